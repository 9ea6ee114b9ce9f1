"""Scalar quantizers for clipped features, in the normalised domain u in [0, 1].

Every channel ``c`` is clipped to its own ``[lo_c, hi_c]`` (see
:mod:`vcodec.baselayer.features.clipping`) and mapped to ``u = (x - lo_c) / (hi_c - lo_c)``.
A quantizer here is a sorted list of reconstruction levels ``r_0 = 0 < ... <
r_{K-1} = 1`` in that domain, shared by all channels; index ``k`` decodes to
``lo_c + r_k (hi_c - lo_c)``.

* :func:`uniform_levels` -- ``N`` evenly spaced levels (the clip-range
  optimiser's model).
* :func:`design_ecsq` -- an entropy-constrained scalar quantizer: Lloyd-style
  iterations on training samples minimising ``D + lam * R`` where
  ``R = -log2 p_k`` is the ideal code length of the chosen index.  Each
  iteration (1) assigns every sample to ``argmin_k (u - r_k)^2 + lam * l_k``,
  (2) moves every *interior* level to the centroid of its cell, (3) sets
  ``l_k = -log2 p_k`` from the new cell probabilities, and (4) drops interior
  levels whose cell became empty.  The two end points stay fixed at 0 and 1:
  clipped values sit exactly there (point masses), so keeping them as levels
  codes every clipped value without further error.  Each step can only lower
  the cost (assignment and centroid are minimisers given the rest; the
  entropy is the minimum cross-entropy), which the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vcodec.errors import ConfigError, InputError

__all__ = ["uniform_levels", "ECSQDesign", "design_ecsq", "assign", "ecsq_cost"]


def uniform_levels(levels: int) -> np.ndarray:
    """``levels`` evenly spaced reconstruction points on [0, 1] (float64)."""
    if not 2 <= levels <= 256:
        raise ConfigError(f"a quantizer needs 2..256 levels, got {levels}")
    return np.linspace(0.0, 1.0, levels)


def _code_lengths(counts: np.ndarray) -> np.ndarray:
    p = counts / max(counts.sum(), 1)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, -np.log2(np.maximum(p, 1e-300)), 64.0)


def assign(u: np.ndarray, levels: np.ndarray, lengths: np.ndarray | None = None, lam: float = 0.0,
           chunk: int = 1 << 18) -> np.ndarray:
    """Index of ``argmin_k (u - r_k)^2 + lam * l_k`` for every sample (int64, same shape).

    With ``lam = 0`` this is the nearest level.  Processed in chunks so that
    large feature maps do not build a (samples x levels) array at once.
    """
    u = np.asarray(u, dtype=np.float64)
    flat = u.ravel()
    r = np.asarray(levels, dtype=np.float64)
    bias = np.zeros_like(r) if lengths is None or lam == 0 else lam * np.asarray(lengths, np.float64)
    out = np.empty(flat.size, dtype=np.int64)
    for s in range(0, flat.size, chunk):
        d = (flat[s: s + chunk, None] - r[None, :]) ** 2 + bias[None, :]
        out[s: s + chunk] = np.argmin(d, axis=1)
    return out.reshape(u.shape)


def ecsq_cost(u: np.ndarray, levels: np.ndarray, lam: float, lengths: np.ndarray | None = None
              ) -> tuple[float, float, float]:
    """(D + lam R, D, R) of quantizing samples ``u`` with ``levels``.

    ``lengths`` are the code lengths used for the decision and the rate
    (default: the ideal lengths of the resulting index histogram).
    """
    u = np.asarray(u, dtype=np.float64).ravel()
    if lengths is None:
        idx = assign(u, levels)
        lengths = _code_lengths(np.bincount(idx, minlength=len(levels)).astype(np.float64))
    idx = assign(u, levels, lengths, lam)
    d = float(np.mean((u - levels[idx]) ** 2))
    r = float(np.mean(lengths[idx]))
    return d + lam * r, d, r


@dataclass
class ECSQDesign:
    """Result of :func:`design_ecsq`: levels, their code lengths and the cost history."""

    levels: np.ndarray
    lengths: np.ndarray
    costs: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False


def _compress(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples -> (representatives, weights): the mean and count of each non-empty bin.

    The end points 0 and 1 (clipped values) get bins of their own so that their
    point masses stay exactly on the fixed levels.
    """
    edge0, edge1 = x <= 0.0, x >= 1.0
    mid = x[~(edge0 | edge1)]
    b = np.minimum((mid * bins).astype(np.int64), bins - 1)
    cnt = np.bincount(b, minlength=bins).astype(np.float64)
    tot = np.bincount(b, weights=mid, minlength=bins)
    keep = cnt > 0
    reps = np.concatenate([[0.0], tot[keep] / cnt[keep], [1.0]])
    wts = np.concatenate([[float(edge0.sum())], cnt[keep], [float(edge1.sum())]])
    nz = wts > 0
    return reps[nz], wts[nz]


def _wcost(x: np.ndarray, w: np.ndarray, r: np.ndarray, lengths: np.ndarray, lam: float, idx: np.ndarray
           ) -> float:
    return float(np.sum(w * ((x - r[idx]) ** 2 + lam * lengths[idx])) / w.sum())


def design_ecsq(u: np.ndarray, levels: int, lam: float, max_iter: int = 300, tol: float = 1e-7,
                bins: int = 8192) -> ECSQDesign:
    """Entropy-constrained scalar quantizer on [0, 1] samples ``u`` (see module docstring).

    Starts from ``levels`` uniform levels; ``lam`` is in units of squared
    normalised amplitude per bit (``lam = 0`` gives a Lloyd-Max quantizer
    with fixed end points).  The samples are first summarised by a
    ``bins``-bin histogram (mean and count per bin, end points kept exact):
    the design then costs O(bins x levels) per iteration whatever the
    number of samples, and ``costs`` is the exact cost on that summary.
    """
    x = np.asarray(u, dtype=np.float64).ravel()
    if x.size == 0:
        raise InputError("cannot design a quantizer from zero samples")
    if lam < 0 or not np.isfinite(lam):
        raise ConfigError(f"ECSQ lambda must be a finite number >= 0, got {lam}")
    if x.min() < 0 or x.max() > 1:
        raise InputError("ECSQ samples must be clipped and normalised to [0, 1] first")
    xs, w = _compress(x, bins)
    r = uniform_levels(levels)
    idx = assign(xs, r)
    lengths = _code_lengths(np.bincount(idx, weights=w, minlength=r.size))
    costs: list[float] = []
    converged = False
    it = 0
    for _it in range(1, max_iter + 1):
        it = _it  # the iteration count is reported after the loop
        # (1) assignment with the current levels and lengths
        idx = assign(xs, r, lengths, lam)
        costs.append(_wcost(xs, w, r, lengths, lam, idx))
        counts = np.bincount(idx, weights=w, minlength=r.size)
        # (2) centroids of interior cells; end points stay put
        sums = np.bincount(idx, weights=w * xs, minlength=r.size)
        new_r = r.copy()
        inner = counts[1:-1] > 0
        new_r[1:-1][inner] = sums[1:-1][inner] / counts[1:-1][inner]
        # (4) drop empty interior cells (with an infinite code length they never win again)
        keep = counts > 0
        keep[0] = keep[-1] = True
        r, counts = new_r[keep], counts[keep]
        # (3) ideal lengths of the new histogram (an empty end point gets a very long code)
        lengths = _code_lengths(counts)
        if len(costs) >= 2 and costs[-2] - costs[-1] <= tol * max(costs[-2], 1e-300):
            converged = True
            break
    idx = assign(xs, r, lengths, lam)
    costs.append(_wcost(xs, w, r, lengths, lam, idx))
    return ECSQDesign(r, lengths, costs, it, converged)
