"""Per-frame and per-run numbers the encoder reports."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FrameStats", "EncodeSummary", "mean_psnr"]


@dataclass
class FrameStats:
    """What one :meth:`Encoder.encode` call did.

    ``base_bytes`` is the payload of this frame's base unit; ``enh_bytes`` the
    enhancement payload bytes written during this call, which may belong to
    earlier frames (a reordering encoder hands packets out late; with
    ``low_delay`` they are this frame's).  PSNR values are in dB on luma;
    ``psnr_full`` is ``None`` when ``psnr`` was off or this frame's
    enhancement picture has not come out of the encoder yet (the summary has
    every frame).
    """

    index: int
    intra: bool
    base_bytes: int
    enh_bytes: int
    psnr_base: float | None = None
    psnr_full: float | None = None

    @property
    def total_bytes(self) -> int:
        return self.base_bytes + self.enh_bytes


def mean_psnr(values: list[float]) -> float | None:
    """Mean of per-frame PSNRs (``inf`` if every frame is exact, ``None`` if there are none).

    Infinite frames (exact) are averaged as 100 dB when others are finite, so a
    few exact frames do not make the mean infinite (the usual codec-tool habit).
    """
    if not values:
        return None
    if all(math.isinf(v) for v in values):
        return math.inf
    return sum(min(v, 100.0) for v in values) / len(values)


@dataclass
class EncodeSummary:
    """Totals of an encoding run (``Encoder.summary()``)."""

    frames: int
    fps: float  # frame rate of the video
    base_bytes: int  # payload bytes of layer 0
    enh_bytes: int  # payload bytes of layer 1
    stream_bytes: int  # whole stream: payloads, unit headers, sequence header, index, end
    seconds: float  # wall time spent in encode()/close() (model loading: extra['setup_seconds'])
    base_mode: str = "learned-base"
    base_model: str = ""
    enh_codec: str = ""
    psnr_base: float | None = None  # mean PSNR-Y of x_base against the input
    psnr_full: float | None = None  # mean PSNR-Y of the full decode
    psnr_full_yuv: float | None = None  # mean PSNR-YUV (6:1:1) of the full decode
    enh_content: str = "residual"  # what layer 1 codes: "residual", "full-frame" or "per-gop" (extra["gops"])
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds of video."""
        return self.frames / self.fps if self.fps > 0 else 0.0

    def kbps(self, nbytes: int) -> float:
        return nbytes * 8 / 1000 / self.duration if self.duration > 0 else 0.0

    @property
    def base_kbps(self) -> float:
        return self.kbps(self.base_bytes)

    @property
    def enh_kbps(self) -> float:
        return self.kbps(self.enh_bytes)

    @property
    def total_kbps(self) -> float:
        return self.kbps(self.stream_bytes)

    @property
    def base_share(self) -> float:
        """Share of the stream that analytics need (layer 0 payloads over the whole stream)."""
        return self.base_bytes / self.stream_bytes if self.stream_bytes else 0.0

    @property
    def encode_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(base_kbps=self.base_kbps, enh_kbps=self.enh_kbps, total_kbps=self.total_kbps,
                 base_share=self.base_share, encode_fps=self.encode_fps)
        return d

    def lines(self) -> list[str]:
        """A short human-readable report."""
        out = [
            f"{self.frames} frames at {self.fps:g} fps, encoded at {self.encode_fps:.1f} frames/s",
            f"  base (layer 0, {self.base_mode} {self.base_model}): {self.base_bytes} bytes, "
            f"{self.base_kbps:.1f} kbit/s ({100 * self.base_share:.1f}% of the stream)",
            f"  enhancement (layer 1, {self.enh_codec}, {self.enh_content}): {self.enh_bytes} bytes, "
            f"{self.enh_kbps:.1f} kbit/s",
            f"  stream: {self.stream_bytes} bytes, {self.total_kbps:.1f} kbit/s",
        ]
        if self.psnr_base is not None or self.psnr_full is not None:
            parts = []
            if self.psnr_base is not None:
                parts.append(f"base {self.psnr_base:.2f} dB")
            if self.psnr_full is not None:
                parts.append(f"full {self.psnr_full:.2f} dB")
            out.append("  PSNR-Y: " + ", ".join(parts))
        gops = self.extra.get("gops")
        if gops:
            modes = "".join("R" if g["mode"] == "residual" else "F" for g in gops)
            probe = float(self.extra.get("probe_seconds", 0.0))
            share = f", {100 * probe / self.seconds:.0f}% of the encode time" if self.seconds > 0 else ""
            out.append(f"  inter-layer per GOP: {modes.count('R')} residual, {modes.count('F')} full-frame "
                       f"({modes}); probes {probe:.2f} s{share}")
        rc = self.extra.get("base_rate_control")
        if rc:
            out.append(f"  base rate control: target {rc['target_kbps']:g} kbit/s, achieved "
                       f"{rc['achieved_kbps']:.1f} ({rc['error_pct']:+.1f} %), quality "
                       f"{rc['quality_min']:.2f}..{rc['quality_max']:.2f}")
        return out
