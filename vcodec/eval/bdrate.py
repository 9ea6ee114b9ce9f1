"""Bjontegaard delta rate and delta quality between two rate-quality curves.

BD-rate is the average difference of the log rate of a *test* curve against an
*anchor* curve over the quality interval both cover, as a percentage of the
anchor's rate: -10 % means the test needs 10 % fewer bits for the same quality.
BD-quality (e.g. BD-PSNR) is the average quality difference over the common
(log) rate interval.

Two interpolators of log10(rate) as a function of quality:

* ``"cubic"``: the original Bjontegaard method (VCEG-M33): a least-squares
  cubic polynomial through the points (at least 4), integrated exactly.
* ``"pchip"``: piecewise cubic Hermite interpolation (VCEG-AL22, used by the
  JVET/MPEG CTC spreadsheets): passes through every point, never overshoots,
  and works from 2 points.  Integrated exactly per piece (Hermite cubics are
  polynomials), here with scipy's :class:`~scipy.interpolate.PchipInterpolator`.

Both need the quality to rise strictly with the rate; curves that do not
(noisy mAP at near-equal rates) make :func:`bd_rate` / :func:`bd_quality` raise
:class:`BDRateError` (an InputError).

Noisy curves: :func:`bd_rate_result` / :func:`bd_quality_result` return a
:class:`BDResult` that holds both the strict value (all points; ``None`` when
the curves refuse) and the value on each curve's monotone upper envelope
(:func:`upper_envelope`: a point is kept only if its quality is above that of
every cheaper point), with the points the envelope dropped, so a report can
give a number *and* its caveat.  ``value`` is ``None`` only when even the
envelopes do not allow a BD computation (too few points, no overlap).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcodec.errors import InputError

__all__ = [
    "BDRateError",
    "BDResult",
    "Envelope",
    "bd_rate",
    "bd_quality",
    "bd_rate_result",
    "bd_quality_result",
    "upper_envelope",
]

_METHODS = ("pchip", "cubic")
#: rates or quality values: a list or a 1-D array
Values = Sequence[float] | np.ndarray


class BDRateError(InputError):
    """The curves do not allow a BD computation (too few points, no overlap, not monotonic)."""


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise BDRateError(f"unknown BD method {method!r}; use 'pchip' or 'cubic'")


def _prepare(rates: Values, quality: Values, method: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    _check_method(method)
    r = np.asarray(rates, np.float64)
    q = np.asarray(quality, np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise BDRateError(f"{what} curve: {r.size} rates but {q.size} quality values")
    ok = np.isfinite(r) & np.isfinite(q)
    r, q = r[ok], q[ok]
    need = 4 if method == "cubic" else 2
    if len(r) < need:
        raise BDRateError(
            f"{what} curve has {len(r)} usable points; the {method} method needs at least {need}"
        )
    if (r <= 0).any():
        raise BDRateError(f"{what} curve has a rate <= 0; rates must be positive")
    order = np.argsort(r)
    r, q = r[order], q[order]
    if np.any(np.diff(q) <= 0) or np.any(np.diff(r) <= 0):
        raise BDRateError(
            f"{what} curve is not strictly increasing (quality {np.round(q, 4).tolist()} "
            f"at rates {np.round(r, 2).tolist()}); BD needs quality to rise with the rate"
        )
    return np.log10(r), q


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Integral over [lo, hi] of the interpolant of y(x)."""
    if method == "cubic":
        poly = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(poly, hi) - np.polyval(poly, lo))
    from scipy.interpolate import PchipInterpolator

    return float(PchipInterpolator(x, y).integrate(lo, hi))


def _curves(anchor_rates: Values, anchor_quality: Values, test_rates: Values, test_quality: Values,
            method: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Both curves checked and prepared: ((log10 rate, quality) of the anchor, the same of the test)."""
    return (_prepare(anchor_rates, anchor_quality, method, "anchor"),
            _prepare(test_rates, test_quality, method, "test"))


def bd_rate(
    anchor_rates: Values,
    anchor_quality: Values,
    test_rates: Values,
    test_quality: Values,
    method: str = "pchip",
) -> float:
    """BD-rate of the test curve against the anchor, in percent (negative = test saves bits)."""
    (la, qa), (lt, qt) = _curves(anchor_rates, anchor_quality, test_rates, test_quality, method)
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        raise BDRateError(
            f"the curves do not overlap in quality (anchor {qa.min():.4g}..{qa.max():.4g}, "
            f"test {qt.min():.4g}..{qt.max():.4g})"
        )
    diff = (_integral(qt, lt, lo, hi, method) - _integral(qa, la, lo, hi, method)) / (hi - lo)
    return (math.pow(10.0, diff) - 1.0) * 100.0


def bd_quality(
    anchor_rates: Values,
    anchor_quality: Values,
    test_rates: Values,
    test_quality: Values,
    method: str = "pchip",
) -> float:
    """BD-quality (e.g. BD-PSNR in dB): mean quality gain of the test curve over the common rate range."""
    (la, qa), (lt, qt) = _curves(anchor_rates, anchor_quality, test_rates, test_quality, method)
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    if hi <= lo:
        raise BDRateError("the curves do not overlap in rate")
    return (_integral(lt, qt, lo, hi, method) - _integral(la, qa, lo, hi, method)) / (hi - lo)


# -- noisy curves: the monotone upper envelope ------------------------------------------
Point = tuple[float, float]


@dataclass(frozen=True)
class Envelope:
    """A curve's monotone upper envelope: kept points (rising in rate and quality), dropped ones."""

    rates: tuple[float, ...]
    quality: tuple[float, ...]
    dropped: tuple[Point, ...]  # (rate, quality) of each point left out, by rising rate


def upper_envelope(rates: Values, quality: Values) -> Envelope:
    """Drop every dominated point: one whose quality is not above that of every cheaper point.

    Sorted by rate (at equal rates the better point first, so the worse one is the dominated
    one), a point is kept only if its quality beats the best quality seen so far.  The kept
    points rise strictly in both rate and quality, which is what BD interpolation needs.
    Non-finite points are not measurements and are ignored (neither kept nor reported).
    """
    r = np.asarray(rates, np.float64)
    q = np.asarray(quality, np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise BDRateError(f"curve: {r.size} rates but {q.size} quality values")
    ok = np.isfinite(r) & np.isfinite(q)
    kept_r: list[float] = []
    kept_q: list[float] = []
    dropped: list[Point] = []
    for rate_v, q_v in sorted(zip(r[ok].tolist(), q[ok].tolist(), strict=True), key=lambda p: (p[0], -p[1])):
        if not kept_q or q_v > kept_q[-1]:
            kept_r.append(rate_v)
            kept_q.append(q_v)
        else:
            dropped.append((rate_v, q_v))
    return Envelope(tuple(kept_r), tuple(kept_q), tuple(dropped))


@dataclass(frozen=True)
class BDResult:
    """One BD computation on possibly noisy curves.

    ``value`` is computed on both curves' upper envelopes (identical to the strict value when
    nothing was dropped); ``strict_value`` on all points as given.  A reason says why either
    is ``None``.  Rates in ``dropped_*`` are in the caller's unit (kbit/s in vcodec eval).
    """

    value: float | None
    strict_value: float | None
    dropped_anchor: tuple[Point, ...]
    dropped_test: tuple[Point, ...]
    method: str
    reason: str = ""
    strict_reason: str = ""

    @property
    def uses_envelope(self) -> bool:
        """True when points were dropped, i.e. ``value`` is not the strict number."""
        return bool(self.dropped_anchor or self.dropped_test)

    def caveat(self, unit: str = "kbit/s") -> str:
        """What the envelope left out, e.g. ``"envelope; dropped test points at 120.5 kbit/s"``;
        empty when nothing was dropped."""
        parts = []
        for who, pts in (("anchor", self.dropped_anchor), ("test", self.dropped_test)):
            if pts:
                noun = "point" if len(pts) == 1 else "points"
                parts.append(f"{who} {noun} at {', '.join(f'{p[0]:.1f}' for p in pts)} {unit}")
        return f"envelope; dropped {' and '.join(parts)}" if parts else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (results.json): ``bd_rate`` keeps its old meaning of "the number"."""
        return {
            "method": self.method,
            "bd_rate": self.value,
            "reason": self.reason,
            "bd_rate_strict": self.strict_value,
            "strict_reason": self.strict_reason,
            "dropped_anchor": [list(p) for p in self.dropped_anchor],
            "dropped_test": [list(p) for p in self.dropped_test],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BDResult:
        """Inverse of :meth:`to_dict`; entries written before the envelope existed read as strict."""
        value = d.get("bd_rate")
        return cls(
            value=value,
            strict_value=d.get("bd_rate_strict", value),
            dropped_anchor=tuple((float(a), float(b)) for a, b in d.get("dropped_anchor") or []),
            dropped_test=tuple((float(a), float(b)) for a, b in d.get("dropped_test") or []),
            method=str(d.get("method", "")),
            reason=str(d.get("reason") or ""),
            strict_reason=str(d.get("strict_reason", d.get("reason")) or ""),
        )


_BDFunc = Callable[[Values, Values, Values, Values, str], float]


def _result(
    fn: _BDFunc,
    anchor_rates: Values,
    anchor_quality: Values,
    test_rates: Values,
    test_quality: Values,
    method: str,
) -> BDResult:
    # caller errors (unknown method, mismatched lengths) still raise; only what the data
    # cannot give (too few points, no overlap, not monotonic) becomes a reason
    _check_method(method)
    ea = upper_envelope(anchor_rates, anchor_quality)
    et = upper_envelope(test_rates, test_quality)
    strict: float | None = None
    strict_reason = ""
    try:
        strict = fn(anchor_rates, anchor_quality, test_rates, test_quality, method)
    except BDRateError as exc:
        strict_reason = str(exc)
    if not (ea.dropped or et.dropped):
        # the envelopes are the curves: the strict answer is the answer
        return BDResult(strict, strict, (), (), method, strict_reason, strict_reason)
    value: float | None = None
    reason = ""
    try:
        value = fn(ea.rates, ea.quality, et.rates, et.quality, method)
    except BDRateError as exc:
        reason = f"on the upper envelopes: {exc}"
    return BDResult(value, strict, ea.dropped, et.dropped, method, reason, strict_reason)


def bd_rate_result(
    anchor_rates: Values,
    anchor_quality: Values,
    test_rates: Values,
    test_quality: Values,
    method: str = "pchip",
) -> BDResult:
    """:func:`bd_rate` on the curves' upper envelopes, beside the strict value; never raises for data
    that merely does not allow a number (the result says why)."""
    return _result(bd_rate, anchor_rates, anchor_quality, test_rates, test_quality, method)


def bd_quality_result(
    anchor_rates: Values,
    anchor_quality: Values,
    test_rates: Values,
    test_quality: Values,
    method: str = "pchip",
) -> BDResult:
    """:func:`bd_quality` on the curves' upper envelopes, beside the strict value."""
    return _result(bd_quality, anchor_rates, anchor_quality, test_rates, test_quality, method)
