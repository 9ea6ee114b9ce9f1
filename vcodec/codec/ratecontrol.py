"""Base-layer rate control: choose the quality of each frame so the base layer holds a target rate.

Every base payload carries its own quality code, so the decoder needs nothing
from this module.  The model: the bits of a frame of type t (intra or P) at
quality q are ``2 ** (alpha_t + BETA * q)``.  ``BETA`` is fixed (measured on
the shipped model: 266 -> 960 kbit/s from q = 0.5 to 1.0 across the shared
clips, 1.85 octaves per 0.5); ``alpha_t`` is learned online from the frames
just coded, so scene content and the P/I ratio are tracked.

Before each frame the controller looks at the rest of the current intra
period: the budget still available for it (target rate x elapsed-plus-remaining
frames, minus the bits already spent) is shared among its remaining frames by
their modelled sizes, and the q that makes the model meet it is chosen.  So an
intra frame is not starved, overspending is paid back within the GOP, and the
rate error does not accumulate across GOPs.  q moves by at most ``max_step``
per frame to keep the detector's input steady.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vcodec.errors import ConfigError

__all__ = ["BETA", "BaseRateController", "RateReport"]

#: log2 bits per unit of quality (see the module docstring)
BETA = 3.7
_SMOOTH = 0.5  # weight of the newest frame in alpha


@dataclass
class RateReport:
    """Target against what was achieved (whole frames only)."""

    target_kbps: float
    achieved_kbps: float
    frames: int
    qualities: list[float] = field(default_factory=list)

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.achieved_kbps - self.target_kbps) / self.target_kbps

    def to_dict(self) -> dict[str, float | int]:
        q = self.qualities
        return {"target_kbps": round(self.target_kbps, 3), "achieved_kbps": round(self.achieved_kbps, 3),
                "error_pct": round(self.error_pct, 2), "frames": self.frames,
                "quality_min": round(min(q), 4) if q else 0.0, "quality_max": round(max(q), 4) if q else 0.0,
                "quality_mean": round(sum(q) / len(q), 4) if q else 0.0}


class BaseRateController:
    """Picks q per frame for a target base-layer rate (``kbps``) at ``fps`` frames per second."""

    def __init__(self, kbps: float, fps: float, intra_period: int, initial_quality: float = 0.5,
                 max_step: float = 0.15) -> None:
        if (
            isinstance(kbps, bool)
            or not isinstance(kbps, (int, float))
            or not math.isfinite(kbps)
            or kbps <= 0
        ):
            raise ConfigError(
                f"base target rate {kbps!r} kbit/s is invalid; use a positive number (e.g. 100)"
            )
        if fps <= 0:
            raise ConfigError(
                f"frame rate {fps!r} is invalid for rate control; give the input's rate (--fps)"
            )
        self.kbps = float(kbps)
        self.fps = float(fps)
        self.intra_period = int(intra_period)
        self.max_step = float(max_step)
        self.quality = float(initial_quality)
        self.frame_bits = self.kbps * 1000.0 / self.fps
        # until measured: an intra frame at q = 0.5 spends 4 frames' budget, a P-frame half an intra
        self.alpha = {True: math.log2(4 * self.frame_bits) - BETA * 0.5,
                      False: math.log2(2 * self.frame_bits) - BETA * 0.5}
        self.spent_in_gop = 0.0
        self.spent = 0
        self.count = 0
        self.qualities: list[float] = []

    def _model_bits(self, intra: bool, q: float) -> float:
        return 2.0 ** (self.alpha[intra] + BETA * q)

    def next_quality(self, index: int) -> float:
        """Quality for frame ``index`` (intra when ``index % intra_period == 0``)."""
        pos = index % self.intra_period
        if pos == 0:
            self.spent_in_gop = 0.0
        remaining = self.intra_period - pos
        budget = self.frame_bits * self.intra_period - self.spent_in_gop
        # never plan on less than a tenth of a frame each: a blown budget lowers q, not to -inf
        budget = max(budget, 0.1 * self.frame_bits * remaining)
        weight = 2.0 ** self.alpha[pos == 0] + (remaining - 1) * 2.0 ** self.alpha[False]
        q = (math.log2(budget) - math.log2(weight)) / BETA
        q = min(max(q, self.quality - self.max_step), self.quality + self.max_step)
        self.quality = min(max(q, 0.0), 1.0)
        return self.quality

    def update(self, intra: bool, bits: int) -> None:
        """Feed back the real size of the frame just coded at :attr:`quality`."""
        measured = math.log2(max(bits, 8)) - BETA * self.quality
        self.alpha[intra] = (1 - _SMOOTH) * self.alpha[intra] + _SMOOTH * measured
        self.spent_in_gop += bits
        self.spent += bits
        self.count += 1
        self.qualities.append(self.quality)

    def report(self) -> RateReport:
        achieved = self.spent / max(self.count, 1) * self.fps / 1000.0
        return RateReport(self.kbps, achieved, self.count, list(self.qualities))
