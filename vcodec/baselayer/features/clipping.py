"""Clipping ranges for split-DNN activations from a model of their statistics.

Problem
-------
A feature value ``x`` is clipped to ``[lo, hi]`` and quantized uniformly with
``N`` levels (``lo`` and ``hi`` are levels, step ``D = (hi - lo) / (N - 1)``).
The expected squared error is

    J(lo, hi) = E[(x - hi)^2 ; x > hi]  +  E[(lo - x)^2 ; x < lo]      (clipping)
              + D^2 / 12 * P(lo < x < hi)                               (granular)

The granular term is the classic high-resolution approximation (error
uniform over a cell); a point mass sitting exactly on a level (ReLU's zeros)
costs nothing and is left out of ``P``.  Widening the range lowers the
clipping terms and raises ``D``; the optimum balances the two.

Models (all fitted by moments on calibration activations)
---------------------------------------------------------
The positive side ``X = x | x > 0`` (fraction ``p_pos``) is modelled as

* exponential(rate ``a = 1/m``):  E[(X-c)^2; X>c] = 2/a^2 exp(-a c),
  P(X>c) = exp(-a c);
* gamma(shape ``k = m^2/v``, scale ``t = v/m``): with the regularised upper
  incomplete gamma ``Q``,  E[X^n; X>c] = t^n Gamma(k+n)/Gamma(k) Q(k+n, c/t),
  so E[(X-c)^2; X>c] = E[X^2;X>c] - 2c E[X;X>c] + c^2 P(X>c).  ``k = 1`` is
  the exponential case.

The negative side ``Y = -x | x < 0`` (fraction ``p_neg``) depends on the
activation:

* **ReLU**: no negative side; ``lo = 0`` is a level and the point mass at 0
  is coded without error, so only ``hi`` is optimised (1-D).
* **leaky ReLU** (``x = s z`` for ``z < 0``): ``Y`` is again a gamma (its own
  moments, usually a much smaller scale), and ``lo = -c_neg`` gets its own,
  smaller clip; (lo, hi) are optimised jointly because they share ``D``.
* **SiLU** (``x = z sigmoid(z)``, what YOLOX uses at dark3): the negative
  side is *bounded*: SiLU has its minimum ``-0.27846`` at ``z = -1.2785``,
  and because SiLU is flat there, real YOLOX-Nano dark3 activations pile up
  against that bound (measured on the shared clips: 62% of values are
  negative, 12% lie below -0.27, the positive side has a coefficient of
  variation of 0.96, i.e. close to exponential).  A gamma would put mass
  below the bound, so ``Y / 0.27846`` is modelled as a beta(a, b) on [0, 1]
  fitted by moments (``a = m c``, ``b = (1-m) c`` with ``c = m(1-m)/v - 1``);
  with the regularised incomplete beta ``I``:
  E[Y^n; Y>u] = B(a+n, b)/B(a, b) (1 - I_u(a+n, b)).  The optimiser may pick
  a lower clip above the bound when the mass near it is small.

For each side the clipping term is ``p_side * E[(X-c)^2; X>c]`` and the
granular mass ``p_side * P(X<c)``.  The high-resolution ``D^2/12`` is poor
when much of the mass sits inside one step (a leaky-ReLU negative side, the
peak of ReLU/SiLU outputs near 0), so :func:`expected_error` also integrates
the same fitted model cell by cell (``exact=True``, the default the
optimiser uses): ``sum_k E[(x - r_k)^2; x in cell k]`` from the partial
moments above, plus the clipped tails and ReLU's point mass at 0.  ``J`` is smooth, so the 1-D case is
solved by a bounded scalar search and the 2-D case by Nelder-Mead from the
best of a coarse grid of lower clips (the cell-by-cell cost is not convex in
``lo``: levels slide over the peak); :func:`brute_force_clip` searches a grid of the *empirical*
error of the real clip-and-quantize operation and is what the tests compare
against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from vcodec.errors import ConfigError, InputError

__all__ = [
    "SILU_MIN",
    "ACTIVATIONS",
    "SideModel",
    "ActivationModel",
    "fit_side",
    "fit_activation",
    "guess_activation",
    "expected_error",
    "optimal_clip",
    "empirical_error",
    "brute_force_clip",
]

#: minimum of SiLU(z) = z * sigmoid(z), reached at z = -1.27846...
SILU_MIN = -0.2784645427610738
ACTIVATIONS = ("relu", "leaky", "silu")
_FAMILIES = ("exponential", "gamma", "beta")


@dataclass(frozen=True)
class SideModel:
    """Distribution of the magnitude on one side of zero (see the module docstring).

    ``family``: exponential / gamma (on [0, inf)) or beta (on [0, ``bound``]).
    ``p``: probability of this side; ``mean``/``var``: moments of the magnitude.
    """

    family: str
    p: float
    mean: float
    var: float
    bound: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in _FAMILIES:
            raise ConfigError(f"activation side model {self.family!r} is not one of {_FAMILIES}")

    # -- partial moments E[X^n ; X > c] for n = 0, 1, 2 -------------------------------
    def tail_moments(self, c: float) -> tuple[float, float, float]:
        c = max(float(c), 0.0)
        m, v = max(self.mean, 1e-12), max(self.var, 1e-18)
        if self.family == "exponential":
            a = 1.0 / m
            e = np.exp(-a * c)
            return e, (c + 1 / a) * e, (c * c + 2 * c / a + 2 / a**2) * e
        if self.family == "gamma":
            k, t = m * m / v, v / m
            x = c / t
            q0 = special.gammaincc(k, x)
            q1 = special.gammaincc(k + 1, x) * t * k
            q2 = special.gammaincc(k + 2, x) * t * t * k * (k + 1)
            return float(q0), float(q1), float(q2)
        # beta on [0, bound]: work on u = X / bound
        b_ = self.bound
        mu, vu = min(max(m / b_, 1e-6), 1 - 1e-6), v / b_**2
        common = max(mu * (1 - mu) / max(vu, 1e-18) - 1.0, 1e-6)
        a, b = mu * common, (1 - mu) * common
        u = min(c / b_, 1.0)
        q0 = 1.0 - special.betainc(a, b, u)
        # B(a+1,b)/B(a,b) = a/(a+b);  B(a+2,b)/B(a,b) = a(a+1)/((a+b)(a+b+1))
        q1 = a / (a + b) * (1.0 - special.betainc(a + 1, b, u)) * b_
        q2 = a * (a + 1) / ((a + b) * (a + b + 1)) * (1.0 - special.betainc(a + 2, b, u)) * b_ * b_
        return float(q0), float(q1), float(q2)

    def clip_error(self, c: float) -> float:
        """p * E[(X - c)^2 ; X > c]: expected squared excess over the clip."""
        q0, q1, q2 = self.tail_moments(c)
        return self.p * max(q2 - 2 * c * q1 + c * c * q0, 0.0)

    def mass_below(self, c: float) -> float:
        return self.p * (1.0 - self.tail_moments(c)[0])

    def upper_limit(self) -> float:
        """A clip beyond which there is (practically) nothing left to clip."""
        if self.family == "beta":
            return self.bound
        return self.mean + 40.0 * np.sqrt(max(self.var, 1e-18)) + 1e-6


@dataclass(frozen=True)
class ActivationModel:
    """Fitted statistics of one activation tensor (or one channel of it)."""

    activation: str
    pos: SideModel
    neg: SideModel | None  # None for ReLU

    def to_dict(self) -> dict[str, Any]:
        return {"activation": self.activation, "pos": asdict(self.pos),
                "neg": None if self.neg is None else asdict(self.neg)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActivationModel:
        try:
            return cls(str(d["activation"]), SideModel(**d["pos"]),
                       None if d.get("neg") is None else SideModel(**d["neg"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"activation model record {d!r} is malformed: {exc}") from None


def fit_side(magnitudes: np.ndarray, p: float, family: str, bound: float = 0.0) -> SideModel:
    """Moment fit of one side (``magnitudes`` >= 0 of the values on that side)."""
    x = np.asarray(magnitudes, dtype=np.float64).ravel()
    if x.size == 0:
        # an empty side: a tiny exponential keeps the formulas finite and clips at ~0
        return SideModel("exponential", 0.0, 1e-6, 1e-12, bound)
    m = float(x.mean())
    v = float(x.var()) if x.size > 1 else m * m
    if family == "beta" and bound <= 0:
        raise ConfigError("a beta side model needs a positive bound")
    return SideModel(family, float(p), max(m, 1e-12), max(v, 1e-18), float(bound))


def guess_activation(values: np.ndarray) -> str:
    """ReLU when nothing is negative, SiLU when the minimum sits at SiLU's bound, else leaky."""
    mn = float(np.min(values))
    if mn >= 0.0:
        return "relu"
    if mn >= SILU_MIN - 1e-3:
        return "silu"
    return "leaky"


def fit_activation(values: np.ndarray, activation: str | None = None, positive: str = "gamma"
                   ) -> ActivationModel:
    """Fit the model of the module docstring to calibration ``values`` (any shape)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise InputError("cannot fit activation statistics to an empty set of values")
    if not np.isfinite(x).all():
        raise InputError("calibration activations contain NaN or infinity")
    act = activation or guess_activation(x)
    if act not in ACTIVATIONS:
        raise ConfigError(f"activation {act!r} is not one of {ACTIVATIONS}")
    if positive not in ("exponential", "gamma"):
        raise ConfigError(f"positive-side model {positive!r} must be 'exponential' or 'gamma'")
    n = x.size
    pos_vals = x[x > 0]
    pos = fit_side(pos_vals, pos_vals.size / n, positive)
    if act == "relu":
        return ActivationModel(act, pos, None)
    neg_vals = -x[x < 0]
    if act == "silu":
        neg = fit_side(np.minimum(neg_vals, -SILU_MIN), neg_vals.size / n, "beta", -SILU_MIN)
    else:
        neg = fit_side(neg_vals, neg_vals.size / n, positive)
    return ActivationModel(act, pos, neg)


def _side_cell_error(side: SideModel, a: float, b: float, r: float) -> float:
    """p * E[(X - r)^2 ; a < X <= b] for one side's magnitude X (0 <= a < b)."""
    ma, mb = side.tail_moments(a), side.tail_moments(b) if np.isfinite(b) else (0.0, 0.0, 0.0)
    m0, m1, m2 = ma[0] - mb[0], ma[1] - mb[1], ma[2] - mb[2]
    return side.p * max(m2 - 2 * r * m1 + r * r * m0, 0.0)


def expected_error(model: ActivationModel, lo: float, hi: float, levels: int, exact: bool = True) -> float:
    """Model-expected squared error of clipping to [lo, hi] and rounding to ``levels`` levels.

    ``exact=False``: the high-resolution form J of the module docstring.
    ``exact=True`` (what :func:`optimal_clip` uses): the same model integrated
    cell by cell, E[(x - r_k)^2] over every rounding cell plus the two
    clipped tails, with the partial moments of the fitted distributions.
    It matters when the step is not small against the distribution's
    features -- e.g. a leaky-ReLU negative side concentrated in a fraction
    of one step, where ``D^2/12`` misjudges the error badly.
    """
    if levels < 2:
        raise ConfigError(f"a quantizer needs at least 2 levels, got {levels}")
    step = (hi - lo) / (levels - 1)
    if not exact:
        err = model.pos.clip_error(hi)
        inside = model.pos.mass_below(hi)
        if model.neg is not None:
            err += model.neg.clip_error(-lo)
            inside += model.neg.mass_below(-lo)
        return float(err + step * step / 12.0 * inside)
    err = model.pos.clip_error(hi)
    if model.neg is not None:
        err += model.neg.clip_error(-lo)
    p_zero = max(1.0 - model.pos.p - (model.neg.p if model.neg is not None else 0.0), 0.0)
    if p_zero > 0:  # ReLU's exact zeros: error to the nearest level
        k0 = np.clip(np.round((0.0 - lo) / step), 0, levels - 1)
        err += p_zero * (lo + k0 * step) ** 2
    for k in range(levels):
        r = lo + k * step
        a = lo if k == 0 else r - step / 2
        b = hi if k == levels - 1 else r + step / 2
        if b > 0:  # positive part of the cell (clipped tail handled above)
            err += _side_cell_error(model.pos, max(a, 0.0), b, r)
        if a < 0 and model.neg is not None:  # negative part, in magnitudes
            err += _side_cell_error(model.neg, max(-b, 0.0), -a, -r)
    return float(err)


def optimal_clip(model: ActivationModel, levels: int) -> tuple[float, float]:
    """(lo, hi) minimising :func:`expected_error` for ``levels`` levels."""
    if levels < 2:
        raise ConfigError(f"a quantizer needs at least 2 levels, got {levels}")
    hmax = model.pos.upper_limit()

    def j_hi(hi: float, lo: float) -> float:
        return expected_error(model, lo, hi, levels)

    if model.neg is None or model.neg.p == 0.0:
        r = optimize.minimize_scalar(j_hi, bounds=(1e-9, hmax), args=(0.0,), method="bounded",
                                     options={"xatol": 1e-7 * hmax})
        return 0.0, float(r.x)
    lmax = model.neg.upper_limit()
    # the exact cost is not convex in lo (levels slide over the peak near 0): start from the
    # best of a coarse grid of lower clips, each with its best upper clip
    starts = []
    for frac in np.linspace(0.0, 1.0, 9):
        lo_ = -frac * lmax
        r = optimize.minimize_scalar(j_hi, bounds=(1e-9, hmax), args=(lo_,), method="bounded",
                                     options={"xatol": 1e-5 * hmax})
        starts.append((float(r.fun), -lo_, float(r.x)))
    _, lo0, hi = min(starts)
    lo0 = -lo0

    def j2(v: np.ndarray) -> float:
        lo_, hi_ = -float(np.clip(v[0], 0.0, lmax)), float(np.clip(v[1], 1e-9, hmax))
        return expected_error(model, lo_, hi_, levels)

    r2 = optimize.minimize(j2, np.array([-lo0, hi]), method="Nelder-Mead",
                           options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 400})
    lo, hi = -float(np.clip(r2.x[0], 0.0, lmax)), float(np.clip(r2.x[1], 1e-9, hmax))
    return lo, hi


def empirical_error(values: np.ndarray, lo: float, hi: float, levels: int) -> float:
    """Mean squared error of really clipping ``values`` to [lo, hi] and quantizing uniformly."""
    x = np.asarray(values, dtype=np.float64).ravel()
    step = (hi - lo) / (levels - 1)
    q = np.round((np.clip(x, lo, hi) - lo) / step)
    return float(np.mean((x - (lo + q * step)) ** 2))


def brute_force_clip(values: np.ndarray, levels: int, lo_grid: np.ndarray | None = None,
                     hi_grid: np.ndarray | None = None) -> tuple[float, float, float]:
    """Grid search of :func:`empirical_error`: (lo, hi, error) of the best grid point."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if hi_grid is None:
        hi_grid = np.linspace(max(x.max(), 1e-6) / 200, max(x.max(), 1e-6), 200)
    if lo_grid is None:
        lo_grid = np.array([0.0]) if x.min() >= 0 else np.linspace(x.min(), 0.0, 40, endpoint=False)
    best = (0.0, 0.0, np.inf)
    for lo in lo_grid:
        for hi in hi_grid:
            e = empirical_error(x, float(lo), float(hi), levels)
            if e < best[2]:
                best = (float(lo), float(hi), e)
    return best
