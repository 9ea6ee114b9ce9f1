"""Motion-compensated prediction in the latent domain (payload version 3).

A P-frame may carry a *motion field*: one vector per ``B x B`` block of latent
positions, in quarter latent positions (a latent position is 16 source pixels at
the base geometry).  The decoder then predicts from the reference y_hat(t-1)
*warped* by the field instead of the co-located y_hat(t-1): the temporal context
network, the predicted means (``mean = warped + d``) and skipped blocks (which
copy the warped reference) all see the moved content where it now is.  No model
changes: ``ctx`` and ``ep_p`` are convolutions, so a shifted input gives a shifted
output, and the measured P-frame bits drop where objects move
(docs/BASE_LAYER.md).

Warping is bilinear with weights in sixteenths, evaluated in float64 in one fixed
order and rounded once to float32, with the reference's edge repeated outside
the picture: identical on every machine and thread count, and a zero vector
reproduces the reference exactly.

The field is coded at the start of the payload's rANS string, blocks in raster
order: a binary *moved* flag (the same context-adaptive binary models as skip
flags: left, above, previous co-located), then for a moved block the two
components' differences from the median of the left, above and above-right
vectors (0 where a neighbour is outside or did not move), each with an adaptive
integer frequency model over ``[-2R, 2R]``.  Models restart at every intra frame.
Integers only: encoder and decoder walk the same states everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from vcodec.baselayer.learned.skipmap import BINARY_CDFS, BlockGrid, SkipContextModel

__all__ = [
    "MotionCoder",
    "block_sums",
    "MotionField",
    "SearchResult",
    "compensate",
    "search",
    "warp",
]

#: channels (those with the largest detector weights) the vector search compares
SEARCH_CHANNELS = 32
_PRECISION_TOTAL = 1 << 16
_COUNT_LIMIT = 1024  # counts are halved past this total: the model tracks the motion of the GOP


@dataclass(frozen=True)
class MotionField:
    """Vectors of one P-frame: ``vectors[r, c] = (dx, dy)`` in quarter latent positions."""

    block: int
    vectors: np.ndarray  # rows x cols x 2, int64

    @property
    def moved(self) -> np.ndarray:
        return np.any(self.vectors != 0, axis=-1)

    def per_position(self, latent_h: int, latent_w: int) -> tuple[np.ndarray, np.ndarray]:
        """(dx, dy), each Hy x Wy: every position takes its block's vector."""
        full = np.repeat(np.repeat(self.vectors, self.block, axis=0), self.block, axis=1)
        return full[:latent_h, :latent_w, 0], full[:latent_h, :latent_w, 1]


def _sample(ref: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Bilinear sampling in sixteenths (edge repeated) in ``ref``'s own float type."""
    _, h, w = ref.shape
    qx = 4 * np.arange(w)[None, :] + dx
    qy = 4 * np.arange(h)[:, None] + dy
    fx, fy = qx & 3, qy & 3
    x0, y0 = qx >> 2, qy >> 2  # arithmetic shift: floor, also for negative positions
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    wx0, wx1 = (4 - fx).astype(ref.dtype), fx.astype(ref.dtype)
    wy0, wy1 = (4 - fy).astype(ref.dtype), fy.astype(ref.dtype)
    top = wx0 * ref[:, ya, xa] + wx1 * ref[:, ya, xb]
    bottom = wx0 * ref[:, yb, xa] + wx1 * ref[:, yb, xb]
    return (wy0 * top + wy1 * bottom) / 16.0


def warp(reference: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``reference`` (C x H x W) sampled at (row + dy/4, col + dx/4) per position, as float64.

    Bilinear in sixteenths with the edge repeated; the products and the sum are
    exact or rounded in one fixed order, so every machine gets the same values.
    """
    return _sample(reference.astype(np.float64, copy=False), dx, dy)


def _shift_whole(ref: np.ndarray, vx: int, vy: int) -> np.ndarray:
    """``ref`` moved by whole positions (edge repeated): what :func:`warp` gives for (4 vx, 4 vy)."""
    _, h, w = ref.shape
    rows = np.clip(np.arange(h) + vy, 0, h - 1)
    cols = np.clip(np.arange(w) + vx, 0, w - 1)
    return np.take(np.take(ref, rows, axis=1), cols, axis=2)


def compensate(reference: torch.Tensor, field: MotionField | None) -> torch.Tensor:
    """The prediction reference of a P-frame: y_hat(t-1) warped by the field (float32, 1 x C x H x W)."""
    if field is None or not field.moved.any():
        return reference
    _, _, h, w = reference.shape
    dx, dy = field.per_position(h, w)
    warped = warp(reference[0].double().numpy(), dx, dy)
    return torch.from_numpy(warped).float()[None]


def block_sums(err: np.ndarray, block: int) -> np.ndarray:
    """Hy x Wy values -> their sums per block (edge blocks may be smaller)."""
    h, w = err.shape
    rows, cols = -(-h // block), -(-w // block)
    padded = np.pad(err, ((0, rows * block - h), (0, cols * block - w)))
    return padded.reshape(rows, block, cols, block).sum(axis=(1, 3))


class SearchResult(NamedTuple):
    """Per block: the best vector, its weighted squared error and the zero vector's."""

    vectors: np.ndarray  # rows x cols x 2
    error: np.ndarray  # rows x cols
    still_error: np.ndarray  # rows x cols


def search(source: np.ndarray, reference: np.ndarray, weights: np.ndarray, block: int,
           motion_range: int, precision: int = 4) -> SearchResult:
    """Per block, the vector whose warped reference is nearest the source latent (weighted L2).

    Whole positions within the range first, then half and quarter steps around each
    block's best (the classic coarse-to-fine search; 25 + 16 warps at range 8);
    ``precision`` 1, 2 or 4 stops at whole, half or quarter positions.
    ``source``/``reference``: C x H x W.
    """
    _, h, w = source.shape
    # the search only ranks candidates (the encoder then counts real bits): float32 on the
    # channels the detector weighs most is enough, and 3-6x faster than all channels in float64
    keep = np.sort(np.argsort(-weights, kind="stable")[:SEARCH_CHANNELS])
    src = source[keep].astype(np.float32)
    ref = reference[keep].astype(np.float32)
    wts = weights[keep].astype(np.float32).reshape(-1, 1, 1)

    def error(predicted: np.ndarray) -> np.ndarray:
        diff = src - predicted
        return block_sums((wts * diff * diff).sum(axis=0), block)

    def cost(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return error(_sample(ref, dx, dy))

    rows, cols = -(-h // block), -(-w // block)
    still = best_cost = error(ref)
    best = np.zeros((rows, cols, 2), dtype=np.int64)
    whole = motion_range // 4
    for vy in range(-whole, whole + 1):
        for vx in range(-whole, whole + 1):
            if vx == 0 and vy == 0:
                continue
            c = error(_shift_whole(ref, vx, vy))
            better = c < best_cost
            best_cost = np.where(better, c, best_cost)
            best[better] = (4 * vx, 4 * vy)
    for step in (2, 1)[: {1: 0, 2: 1, 4: 2}[precision]]:
        centre = best.copy()
        for oy in (-step, 0, step):
            for ox in (-step, 0, step):
                if ox == 0 and oy == 0:
                    continue
                cand = np.clip(centre + np.array([ox, oy]), -motion_range, motion_range)
                field = MotionField(block, cand)
                c = cost(*field.per_position(h, w))
                better = c < best_cost
                best_cost = np.where(better, c, best_cost)
                best[better] = cand[better]
    return SearchResult(best, best_cost, still)


class _AdaptiveSymbols:
    """An adaptive frequency model over ``n`` symbols in integers (counts -> a 16-bit CDF)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.counts = np.ones(n, dtype=np.int64)

    def cdf(self) -> list[int]:
        # every symbol keeps a frequency >= 1; the escape bin CompressAI's coder appends keeps >= 1
        total = int(self.counts.sum())
        freqs = 1 + (self.counts * (_PRECISION_TOTAL - 1 - self.n)) // total
        return [0, *np.cumsum(freqs).astype(np.int64).tolist(), _PRECISION_TOTAL]

    def update(self, symbol: int) -> None:
        self.counts[symbol] += 8
        if int(self.counts.sum()) > _COUNT_LIMIT:
            self.counts = (self.counts + 1) // 2


def _median_prediction(vectors: np.ndarray, r: int, c: int) -> tuple[int, int]:
    cols = vectors.shape[1]
    left = vectors[r, c - 1] if c > 0 else (0, 0)
    above = vectors[r - 1, c] if r > 0 else (0, 0)
    above_right = vectors[r - 1, c + 1] if r > 0 and c + 1 < cols else (0, 0)
    px = sorted((int(left[0]), int(above[0]), int(above_right[0])))[1]
    py = sorted((int(left[1]), int(above[1]), int(above_right[1])))[1]
    return px, py


class MotionCoder:
    """The field's models for one GOP; the encoder's and the decoder's walks are the same."""

    def __init__(self) -> None:
        self.moved_flags = SkipContextModel()
        self.range = 0
        self.components: list[_AdaptiveSymbols] = []

    def reset(self) -> None:
        """Start of a GOP (intra frame)."""
        self.moved_flags.reset()
        self.components = []
        self.range = 0

    def no_field(self) -> None:
        """A P-frame without a field: for the next one, every block of this frame stood still."""
        self.moved_flags.previous = None

    def write(self, enc: Any, field: MotionField, motion_range: int) -> None:
        """Code the field into a CompressAI ``BufferedRansEncoder`` (one CDF per symbol)."""
        values, tables = self.symbols(field, motion_range)
        enc.encode_with_indexes(values, list(range(len(values))), tables, [len(t) for t in tables],
                                [0] * len(tables))

    def _models(self, motion_range: int) -> list[_AdaptiveSymbols]:
        if motion_range != self.range or not self.components:
            self.range = motion_range
            self.components = [_AdaptiveSymbols(4 * motion_range + 1) for _ in range(2)]
        return self.components

    def symbols(self, field: MotionField, motion_range: int
                ) -> tuple[list[int], list[list[int]]]:
        """(values, one CDF per value) of the field in coding order; updates the models."""
        models = self._models(motion_range)
        rows, cols, _ = field.vectors.shape
        self.moved_flags.check_previous(BlockGrid(field.block, rows, cols))
        moved = field.moved.astype(np.uint8)
        values: list[int] = []
        cdfs: list[list[int]] = []
        coded = np.zeros_like(field.vectors)
        for r in range(rows):
            for c in range(cols):
                state, ctx = self.moved_flags.next_index(moved, r, c)
                values.append(int(moved[r, c]))
                cdfs.append(BINARY_CDFS[state])
                self.moved_flags.update(ctx, int(moved[r, c]))
                if moved[r, c]:
                    pred = _median_prediction(coded, r, c)
                    for k in range(2):
                        sym = int(field.vectors[r, c, k]) - pred[k] + 2 * motion_range
                        cdfs.append(models[k].cdf())
                        values.append(sym)
                        models[k].update(sym)
                    coded[r, c] = field.vectors[r, c]
        self.moved_flags.finish_frame(moved)
        return values, cdfs

    def decode(self, read: Callable[[list[int]], int], rows: int, cols: int, block: int,
               motion_range: int) -> MotionField:
        """The field from ``read(cdf) -> int`` (one rANS symbol under that CDF); raises ValueError
        on values no encoder writes."""
        models = self._models(motion_range)
        self.moved_flags.check_previous(BlockGrid(block, rows, cols))
        moved = np.zeros((rows, cols), dtype=np.uint8)
        vectors = np.zeros((rows, cols, 2), dtype=np.int64)
        for r in range(rows):
            for c in range(cols):
                state, ctx = self.moved_flags.next_index(moved, r, c)
                bit = read(BINARY_CDFS[state])
                if bit not in (0, 1):
                    raise ValueError(f"motion flag ({r}, {c}) decodes to {bit}")
                moved[r, c] = bit
                self.moved_flags.update(ctx, bit)
                if bit:
                    pred = _median_prediction(vectors, r, c)
                    for k in range(2):
                        sym = read(models[k].cdf())
                        if not 0 <= sym <= 4 * motion_range:
                            raise ValueError(f"motion vector of block ({r}, {c}) is out of range")
                        models[k].update(sym)
                        value = sym - 2 * motion_range + pred[k]
                        if not -motion_range <= value <= motion_range:
                            raise ValueError(f"motion vector of block ({r}, {c}) is out of range")
                        vectors[r, c, k] = value
                    if not vectors[r, c].any():
                        raise ValueError(f"block ({r}, {c}) is flagged moved with a zero vector")
        self.moved_flags.finish_frame(moved)
        return MotionField(block, vectors)
