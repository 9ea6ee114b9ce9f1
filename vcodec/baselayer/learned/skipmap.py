"""Skip flags of P-frame blocks: block geometry and the context-adaptive binary model.

A P-frame's latent (M x Hy x Wy) is split into ``B x B`` blocks of latent
positions (all M channels of a position belong to its block).  A block flagged
*skip* copies y_hat(t-1) exactly and costs only its flag.

The flags are coded in raster order inside the payload's rANS string, before
the latent symbols.  Each flag's probability comes from one of eight adaptive
binary models, chosen by its context: the flag to the left, the flag above
(both 0 outside the picture) and the co-located flag of the previous P-frame
(0 after an intra frame).  A model keeps integer counts and turns them into one
of :data:`PROB_STATES` quantised probabilities, so encoder and decoder adapt
identically on every machine (no floating point anywhere on this path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BINARY_CDFS",
    "BINARY_CDF_LENGTHS",
    "BINARY_OFFSETS",
    "PROB_STATES",
    "SkipContextModel",
    "block_grid",
    "expand_blocks",
    "flag_bits_estimate",
]

#: P(skip) is quantised to k / PROB_STATES, k = 1 .. PROB_STATES - 1
PROB_STATES = 64
_PRECISION = 16  # CompressAI's rANS uses 16-bit CDFs
_TOTAL = 1 << _PRECISION
#: counts are halved past this total: the model forgets old statistics (adapts within a GOP)
_COUNT_LIMIT = 60


def _binary_cdf(p_one_num: int) -> list[int]:
    """CDF of {0, 1} plus CompressAI's escape bin (kept at the minimum mass of 1)."""
    one = max(1, (p_one_num * (_TOTAL - 1)) // PROB_STATES)
    zero = (_TOTAL - 1) - one
    return [0, zero, zero + one, _TOTAL]


#: one CDF per probability state (index k - 1 holds P(1) = k / PROB_STATES)
BINARY_CDFS: list[list[int]] = [_binary_cdf(k) for k in range(1, PROB_STATES)]
BINARY_CDF_LENGTHS: list[int] = [4] * len(BINARY_CDFS)
BINARY_OFFSETS: list[int] = [0] * len(BINARY_CDFS)


@dataclass(frozen=True)
class BlockGrid:
    """How the latent is tiled: ``rows x cols`` blocks of ``size x size`` (edge blocks may be smaller)."""

    size: int
    rows: int
    cols: int


def block_grid(latent_h: int, latent_w: int, size: int) -> BlockGrid:
    return BlockGrid(size, -(-latent_h // size), -(-latent_w // size))


def expand_blocks(flags: np.ndarray, grid: BlockGrid, latent_h: int, latent_w: int) -> np.ndarray:
    """rows x cols block flags -> Hy x Wy per-position flags."""
    full = np.repeat(np.repeat(flags.astype(bool), grid.size, axis=0), grid.size, axis=1)
    return full[:latent_h, :latent_w]


class SkipContextModel:
    """Eight adaptive binary models (left, above, previous co-located); state lives per GOP.

    ``previous`` is the last P-frame's flag map (None after an intra frame).  Call
    :meth:`indexes` (encoder: all flags known) or :meth:`next_index` +
    :meth:`update` (decoder: one flag at a time); both walk the same states.
    """

    def __init__(self) -> None:
        self.counts = np.ones((8, 2), dtype=np.int64)
        self.previous: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Start of a GOP: every model back at P(skip) = 1/2 (Laplace counts), no previous map."""
        self.counts[:] = 1
        self.previous = None

    @staticmethod
    def context(flags: np.ndarray, prev: np.ndarray | None, r: int, c: int) -> int:
        left = int(flags[r, c - 1]) if c > 0 else 0
        above = int(flags[r - 1, c]) if r > 0 else 0
        colocated = int(prev[r, c]) if prev is not None else 0
        return left | (above << 1) | (colocated << 2)

    def _state(self, ctx: int) -> int:
        c0, c1 = (int(v) for v in self.counts[ctx])
        # round(P(1) * PROB_STATES) clamped to 1 .. PROB_STATES - 1, in integers
        k = (2 * c1 * PROB_STATES + (c0 + c1)) // (2 * (c0 + c1))
        return min(max(k, 1), PROB_STATES - 1) - 1

    def update(self, ctx: int, flag: int) -> None:
        self.counts[ctx, flag] += 1
        if int(self.counts[ctx].sum()) > _COUNT_LIMIT:
            self.counts[ctx] = (self.counts[ctx] + 1) // 2

    def next_index(self, flags: np.ndarray, r: int, c: int) -> tuple[int, int]:
        """(CDF index, context) of flag (r, c) given the flags decoded so far."""
        ctx = self.context(flags, self.previous, r, c)
        return self._state(ctx), ctx

    def indexes(self, flags: np.ndarray) -> list[int]:
        """CDF indexes of every flag in raster order (the encoder's walk); updates the states."""
        out: list[int] = []
        for r in range(flags.shape[0]):
            for c in range(flags.shape[1]):
                idx, ctx = self.next_index(flags, r, c)
                out.append(idx)
                self.update(ctx, int(flags[r, c]))
        return out

    def finish_frame(self, flags: np.ndarray) -> None:
        self.previous = flags.astype(np.uint8).copy()

    def check_previous(self, grid: BlockGrid) -> None:
        """Forget the previous map if the block grid changed (another block size)."""
        if self.previous is not None and self.previous.shape != (grid.rows, grid.cols):
            self.previous = None


def flag_bits_estimate(p_skip: float) -> tuple[float, float]:
    """(bits of a skip flag, bits of a code flag) under a fixed P(skip): for encoder decisions."""
    p = min(max(p_skip, 1.0 / PROB_STATES), 1.0 - 1.0 / PROB_STATES)
    return float(-np.log2(p)), float(-np.log2(1.0 - p))
