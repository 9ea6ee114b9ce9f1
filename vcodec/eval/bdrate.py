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
(noisy mAP at near-equal rates) raise :class:`BDRateError` (an InputError):
the caller should report "not computable" rather than a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vcodec.errors import InputError

__all__ = ["BDRateError", "bd_rate", "bd_quality"]

_METHODS = ("pchip", "cubic")


class BDRateError(InputError):
    """The curves do not allow a BD computation (too few points, no overlap, not monotonic)."""


def _prepare(
    rates: Sequence[float], quality: Sequence[float], method: str, what: str
) -> tuple[np.ndarray, np.ndarray]:
    if method not in _METHODS:
        raise BDRateError(f"unknown BD method {method!r}; use 'pchip' or 'cubic'")
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


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-rate of the test curve against the anchor, in percent (negative = test saves bits)."""
    la, qa = _prepare(anchor_rates, anchor_quality, method, "anchor")
    lt, qt = _prepare(test_rates, test_quality, method, "test")
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        raise BDRateError(
            f"the curves do not overlap in quality (anchor {qa.min():.4g}..{qa.max():.4g}, "
            f"test {qt.min():.4g}..{qt.max():.4g})"
        )
    diff = (_integral(qt, lt, lo, hi, method) - _integral(qa, la, lo, hi, method)) / (hi - lo)
    return (math.pow(10.0, diff) - 1.0) * 100.0


def bd_quality(
    anchor_rates: Sequence[float],
    anchor_quality: Sequence[float],
    test_rates: Sequence[float],
    test_quality: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-quality (e.g. BD-PSNR in dB): mean quality gain of the test curve over the common rate range."""
    la, qa = _prepare(anchor_rates, anchor_quality, method, "anchor")
    lt, qt = _prepare(test_rates, test_quality, method, "test")
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    if hi <= lo:
        raise BDRateError("the curves do not overlap in rate")
    return (_integral(lt, qt, lo, hi, method) - _integral(la, qa, lo, hi, method)) / (hi - lo)
