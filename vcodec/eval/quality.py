"""Picture quality: PSNR-Y, PSNR-U/V, PSNR-YUV (6:1:1) and MS-SSIM (pytorch-msssim).

Conventions (those of the HEVC/VVC common test conditions):

* PSNR of a plane: ``10 log10(peak^2 / MSE)`` with ``peak = 2^bitdepth - 1``; a
  frame identical to the reference scores :data:`PSNR_CAP` dB (instead of
  infinity, so that sequence means stay finite).
* PSNR-YUV = ``(6 PSNR-Y + PSNR-U + PSNR-V) / 8``.
* Sequence values are means of the per-frame values.
* MS-SSIM on the luma plane (5 scales, 11x11 Gaussian window); the luma plane
  must be larger than 160 pixels on its short side, smaller pictures give NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame

__all__ = ["PSNR_CAP", "plane_psnr", "frame_quality", "QualityAccumulator", "MS_SSIM_MIN_SIDE"]

PSNR_CAP = 100.0
#: pytorch-msssim with 5 scales and an 11-pixel window needs a short side above (11 - 1) * 2^4
MS_SSIM_MIN_SIDE = 161


def plane_psnr(ref: np.ndarray, test: np.ndarray, peak: float) -> float:
    """PSNR in dB of one plane (capped at :data:`PSNR_CAP`)."""
    if ref.shape != test.shape:
        raise InputError(f"cannot compare planes of shapes {ref.shape} and {test.shape}")
    mse = float(np.mean((ref.astype(np.float64) - test.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def _ms_ssim_y(ref: Frame, test: Frame) -> float:
    if min(ref.width, ref.height) < MS_SSIM_MIN_SIDE:
        return float("nan")
    import torch
    from pytorch_msssim import ms_ssim

    x = torch.from_numpy(ref.y.astype(np.float32))[None, None]
    y = torch.from_numpy(test.y.astype(np.float32))[None, None]
    with torch.no_grad():
        return float(ms_ssim(x, y, data_range=float(ref.max_value), size_average=True))


def frame_quality(ref: Frame, test: Frame, ms_ssim: bool = True) -> dict[str, float]:
    """``psnr_y``, ``psnr_u``, ``psnr_v``, ``psnr_yuv`` and ``ms_ssim`` of ``test`` against ``ref``."""
    if (ref.width, ref.height) != (test.width, test.height):
        raise InputError(
            f"frame {test.index} is {test.width}x{test.height}, its reference "
            f"{ref.width}x{ref.height}; quality needs pictures of the same size"
        )
    if ref.bit_depth != test.bit_depth:
        test = test.with_bit_depth(ref.bit_depth)
    peak = float(ref.max_value)
    y, u, v = (plane_psnr(a, b, peak) for a, b in zip(ref.planes, test.planes, strict=True))
    out = {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}
    out["ms_ssim"] = _ms_ssim_y(ref, test) if ms_ssim else float("nan")
    return out


@dataclass
class QualityAccumulator:
    """Per-frame quality values and their sequence means."""

    ms_ssim: bool = True
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, ref: Frame, test: Frame) -> dict[str, float]:
        q = frame_quality(ref, test, self.ms_ssim)
        for k, v in q.items():
            self.values.setdefault(k, []).append(v)
        return q

    def extend(self, pairs: Iterable[tuple[Frame, Frame]]) -> None:
        for ref, test in pairs:
            self.add(ref, test)

    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) if v else float("nan") for k, v in self.values.items()}
