"""Encoder-side rate-distortion decisions of the learned base layer (the decoder never runs this).

Distortion is measured on the latent, weighted per channel by how much an error
in that channel moves the detector's input T(y_hat): ``w_c = E||dT/dy_c||^2``,
measured once per sequence on the first intra frame by perturbing each channel
(:func:`channel_weights`).  Why not T(y_hat) itself: a decision per element or
per block would need one T evaluation per candidate, hundreds per frame; the
weighting is its first-order (linearised) equivalent and costs one batched T
pass per sequence.  Weights are normalised to mean 1, so ``lam`` reads as "bits
per squared quantisation step of an average channel" (the classic high-rate
balance of an entropy-coded uniform quantiser is 6 / ln 2 = 8.7).

Everything that decides is computed in float64 numpy (single-threaded,
fixed summation order), so the same input gives the same stream on every
machine and thread count.

* **RDOQ**: per element, the rounded symbol or its neighbour toward the
  predicted mean, whichever has the lower ``bits + lam * w_c * err^2``; bits
  come from the discretised Gaussian the entropy coder uses.
* **Skip blocks**: per ``B x B`` block of a P-frame, copy y_hat(t-1)
  (distortion of the copy, one flag) or code it (its RDOQ cost, one flag).
* **Change gate**: which latent positions sit where the source pixels changed
  (:func:`pixel_change`, :func:`changed_positions`); lossy decisions are kept away
  from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtr

__all__ = ["LATENT_STRIDE", "RdoDecision", "SymbolCosts", "block_any", "box_positions", "changed_positions",
           "channel_weights", "decide_skip", "hold_stable", "pixel_change", "rdoq", "symbol_bits",
           "zero_blocks"]

_MIN_P = 2.0 ** -16  # the coder's smallest probability
#: pixels per latent position (the base layer's y is stride 16)
LATENT_STRIDE = 16
_WEIGHT_GRID = 256.0


def symbol_bits(sym: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """-log2 P(sym) under a zero-mean discretised Gaussian of scale ``sigma`` (symbol units)."""
    a = np.abs(sym)
    p = ndtr((0.5 - a) / sigma) - ndtr((-0.5 - a) / sigma)
    return -np.log2(np.maximum(p, _MIN_P))


class SymbolCosts:
    """:func:`symbol_bits` for the entropy coder's scale table, by table lookup.

    The coder knows only ``len(sigmas)`` scales, so the cost of every symbol up to
    :attr:`LARGEST` is tabulated once (the erf evaluations were a third of the encoder's
    own time); larger symbols, which are rare, use the formula.
    """

    LARGEST = 63

    def __init__(self, sigmas: np.ndarray) -> None:
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.lut = symbol_bits(np.arange(self.LARGEST + 1)[None, :], self.sigmas[:, None])

    def __call__(self, sym: np.ndarray, idx: np.ndarray) -> np.ndarray:
        a = np.abs(sym).astype(np.int64)
        out = self.lut[idx, np.minimum(a, self.LARGEST)]
        big = a > self.LARGEST
        if big.any():
            out = np.where(big, symbol_bits(a, self.sigmas[idx]), out)
        return out


def rdoq(residual: np.ndarray, bits_of: Callable[[np.ndarray], np.ndarray], offset: np.ndarray,
         weights: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose symbols for ``residual = (y - mean) * gain`` (symbol units, 1 x M x H x W).

    ``bits_of(symbols)`` gives each element's cost in bits under its own scale,
    ``offset`` is the reconstruction offset of each element's scale index, ``weights``
    the per-channel distortion weights (M). Returns (symbols, bits, weighted distortion)
    per element, all float64.
    """
    w = weights.reshape(1, -1, 1, 1)
    s0 = np.round(residual)
    s1 = s0 - np.sign(s0)

    def cost(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        recon = np.where(s != 0, np.sign(s) * (np.abs(s) + offset), 0.0)
        return bits_of(s), w * (residual - recon) ** 2

    b0, d0 = cost(s0)
    if lam <= 0:
        return s0, b0, d0
    b1, d1 = cost(s1)
    take = (s0 != 0) & (b1 + lam * d1 < b0 + lam * d0)
    return (np.where(take, s1, s0), np.where(take, b1, b0), np.where(take, d1, d0))


def hold_stable(residual: np.ndarray, prev_residual: np.ndarray, sym: np.ndarray, bits: np.ndarray,
                dist: np.ndarray, bits_of: Callable[[np.ndarray], np.ndarray], offset: np.ndarray,
                weights: np.ndarray, deadzone: float, where: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Temporal dead zone of P-frames: where the source latent moved by less than ``deadzone``
    quantisation steps since the reference (``prev_residual = (y_hat(t-1) - mean) * gain``), code
    the symbol that reconstructs the reference instead of re-quantising the source.

    Why: most non-zero P-frame symbols sit where nothing moved -- elements the intra frame
    quantised near a bin edge, flipping with the source's noise (tools/train_base.py's
    measurements); holding them costs a fraction of a step of distortion and no bits.
    ``where`` (H x W bool) limits the zone to those positions (the change gate's static ones).
    Returns (symbols, bits, weighted distortion) like :func:`rdoq`.
    """
    held = np.round(prev_residual)
    take = (np.abs(residual - prev_residual) < deadzone) & (held != sym)
    if where is not None:
        take &= where[None, None]
    if not take.any():
        return sym, bits, dist
    recon = np.where(held != 0, np.sign(held) * (np.abs(held) + offset), 0.0)
    held_dist = weights.reshape(1, -1, 1, 1) * (residual - recon) ** 2
    return (np.where(take, held, sym), np.where(take, bits_of(held), bits), np.where(take, held_dist, dist))


def _block_sum(per_position: np.ndarray, block: int) -> np.ndarray:
    """H x W -> ceil(H/B) x ceil(W/B) sums (zero padding at the bottom/right edge)."""
    h, w = per_position.shape
    rows, cols = -(-h // block), -(-w // block)
    padded = np.zeros((rows * block, cols * block), dtype=np.float64)
    padded[:h, :w] = per_position
    return padded.reshape(rows, block, cols, block).sum(axis=(1, 3))


@dataclass(frozen=True)
class RdoDecision:
    """Skip flags per block and the cost terms behind them (for reports and tests)."""

    skip: np.ndarray  # rows x cols, uint8
    code_cost: np.ndarray  # bits + lam * D of coding each block
    skip_cost: np.ndarray  # lam * D of copying each block


def decide_skip(code_bits: np.ndarray, code_dist: np.ndarray, copy_dist: np.ndarray, block: int,
                lam: float, flag_bits: tuple[float, float], allowed: np.ndarray | None = None
                ) -> RdoDecision:
    """Per-block choice between copying the reference and coding (arrays 1 x M x H x W).

    ``allowed`` (rows x cols bool) restricts skipping to those blocks.
    """
    code = _block_sum((code_bits + lam * code_dist)[0].sum(axis=0), block) + flag_bits[1]
    copy = _block_sum(lam * copy_dist[0].sum(axis=0), block) + flag_bits[0]
    skip = copy <= code
    if allowed is not None:
        skip &= allowed
    return RdoDecision(skip.astype(np.uint8), code, copy)


def zero_blocks(symbols: np.ndarray, block: int) -> np.ndarray:
    """rows x cols: True where every symbol of the block (all channels) is 0."""
    return ~block_any((symbols[0] != 0).any(axis=0), block)


def pixel_change(reference: np.ndarray, current: np.ndarray, stride: int = LATENT_STRIDE) -> np.ndarray:
    """Mean absolute difference in 8-bit levels (all colour channels) of the ``stride x stride``
    patch behind every latent position: 3 x H x W pictures in [0, 1] -> H/stride x W/stride.

    float64 numpy with a fixed order: the same pictures give the same map on every machine.
    """
    d = np.abs(current.astype(np.float64) - reference.astype(np.float64)).mean(axis=0) * 255.0
    h, w = d.shape
    return d.reshape(h // stride, stride, w // stride, stride).mean(axis=(1, 3))


def changed_positions(change: np.ndarray, threshold: float) -> np.ndarray:
    """Positions whose change exceeds ``threshold``, grown by one position in every direction:
    g_a's receptive field reaches beyond a position's own patch, so a moving edge next to a
    block changes that block's latent too."""
    hit = change > threshold
    padded = np.pad(hit, 1)
    out = np.zeros_like(hit)
    h, w = hit.shape
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy: dy + h, dx: dx + w]
    return out


def box_positions(boxes: np.ndarray, scale: float, latent_size: tuple[int, int]) -> np.ndarray:
    """Hy x Wy: latent positions under ``boxes`` (N x 4 x0, y0, x1, y1 in source pixels; ``scale``
    = coded / source size), grown by one position like :func:`changed_positions`."""
    hy, wy = latent_size
    out = np.zeros((hy, wy), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale:
        r0, c0 = max(int(y0 // LATENT_STRIDE) - 1, 0), max(int(x0 // LATENT_STRIDE) - 1, 0)
        r1 = min(int(np.ceil(y1 / LATENT_STRIDE)) + 1, hy)
        c1 = min(int(np.ceil(x1 / LATENT_STRIDE)) + 1, wy)
        out[r0:r1, c0:c1] = True
    return out


def block_any(per_position: np.ndarray, block: int) -> np.ndarray:
    """H x W bool -> ceil(H/B) x ceil(W/B): True where any position of the block is True."""
    return _block_sum(per_position.astype(np.float64), block) > 0


def channel_weights(T: torch.nn.Module, y_hat: torch.Tensor, step: float, crop: int = 16,
                    chunk: int = 16, seed: int = 0, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Per-channel weights ``E||dT/dy_c||^2`` around ``y_hat``, normalised to mean 1.

    Each channel in turn is perturbed by +-``step``/2 (a fixed pseudo-random sign
    pattern) on a central ``crop`` x ``crop`` window; the mean squared change of T's
    output per unit perturbation is the weight. ``T`` runs in ``dtype`` (a
    thread-independent copy: vcodec.detection.exact); the reductions run in float64
    and the weights are rounded to 1/256, so that their thread-dependent order
    cannot change a decision.
    """
    _, m, h, w = y_hat.shape
    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    y = y_hat[:, :, top: top + crop, left: left + crop].to(dtype)
    gen = torch.Generator().manual_seed(seed)
    signs = (torch.randint(0, 2, y.shape[-2:], generator=gen) * 2 - 1).to(y.dtype)
    eps = 0.5 * step
    out = np.zeros(m, dtype=np.float64)
    with torch.no_grad():
        base = T(y)
        for c0 in range(0, m, chunk):
            cs = list(range(c0, min(m, c0 + chunk)))
            batch = y.repeat(len(cs), 1, 1, 1)
            for i, c in enumerate(cs):
                batch[i, c] += eps * signs
            diff = T(batch) - base
            for i, c in enumerate(cs):
                # a float64 reduction: its thread-dependent order moves ~1e-16, far below the grid
                out[c] = float(diff[i].double().pow(2).mean()) / (eps * eps)
    out = np.maximum(out, 1e-12)
    out = out / out.mean()
    out = np.clip(out, 0.02, 50.0)
    return np.round(out * _WEIGHT_GRID) / _WEIGHT_GRID
