"""Where a source frame sits in the base layer's coded picture: working size, scale, padding.

A W x H frame whose long side exceeds the working size (``max_long_side``, 832
by default, or the stream's ``--base-size``) is first downscaled (area filter)
so that it fits -- spatial scalability: the base layer serves analytics at the
working size, the enhancement layer codes the difference to the upscaled
x_base.  The (possibly scaled) picture is padded at the bottom and right with
grey 114 to a multiple of 64, the same geometry as the detector's
``prepare(frame, mode="pad", multiple=64)``, so the stride-16 latent and the
detector's stride-8 features line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from vcodec.errors import ConfigError, InputError
from vcodec.io.frame import Frame

if TYPE_CHECKING:  # the detection package is imported only when a detector runs
    from vcodec.detection.base import Geometry

__all__ = ["BaseGeometry", "MIN_LONG_SIDE", "PAD_VALUE", "check_long_side", "frame_to_tensor",
           "tensor_to_frame"]

PAD_VALUE = 114  # the detector's letterbox/pad grey, so padded regions look alike to both

#: smallest working size: one padded 64 x 64 block
MIN_LONG_SIDE = 64


def check_long_side(long_side: int | None) -> None:
    if long_side is None:
        return
    if isinstance(long_side, bool) or not isinstance(long_side, int) \
            or not MIN_LONG_SIDE <= long_side <= 0xFFFF:
        raise ConfigError(f"base working size {long_side!r} is invalid; use a long side in pixels of at "
                          f"least {MIN_LONG_SIDE} (e.g. 416, 640 or 832)")


@dataclass(frozen=True)
class BaseGeometry:
    """How a source frame maps onto the coded picture (scale, then pad bottom/right)."""

    width: int  # source frame
    height: int
    coded_width: int  # after downscale (== width when not scaled)
    coded_height: int
    padded_width: int  # after padding to the multiple
    padded_height: int

    @property
    def scale(self) -> float:
        """coded / source size (1.0 when the base is coded at full resolution)."""
        return self.coded_width / self.width

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.padded_height // 16, self.padded_width // 16

    def to_detector(self) -> Geometry:
        """The equivalent :class:`vcodec.detection.base.Geometry` (boxes back to source pixels)."""
        from vcodec.detection.base import Geometry

        return Geometry(self.width, self.height, self.padded_width, self.padded_height, self.scale,
                        0, 0, self.padded_width - self.coded_width, self.padded_height - self.coded_height,
                        "pad")

    @classmethod
    def for_size(cls, width: int, height: int, max_long_side: int = 832, multiple: int = 64) -> BaseGeometry:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise InputError(f"frame size {width}x{height} is not a positive even size")
        long_side = max(width, height)
        if long_side > max_long_side:
            s = max_long_side / long_side
            cw = max(2, int(round(width * s / 2)) * 2)
            ch = max(2, int(round(height * s / 2)) * 2)
        else:
            cw, ch = width, height
        pw = -(-cw // multiple) * multiple
        ph = -(-ch // multiple) * multiple
        return cls(width, height, cw, ch, pw, ph)


def frame_to_tensor(frame: Frame, geom: BaseGeometry) -> torch.Tensor:
    """1 x 3 x Hp x Wp float32 RGB in [0, 1], scaled and padded per ``geom``."""
    rgb = frame.to_rgb()
    if (geom.coded_width, geom.coded_height) != (frame.width, frame.height):
        import cv2

        rgb = cv2.resize(rgb, (geom.coded_width, geom.coded_height), interpolation=cv2.INTER_AREA)
    out = np.full((geom.padded_height, geom.padded_width, 3), PAD_VALUE, dtype=np.uint8)
    out[: geom.coded_height, : geom.coded_width] = rgb
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_to_frame(x: torch.Tensor, geom: BaseGeometry, bit_depth: int = 8, matrix: str | None = None,
                    index: int = 0) -> Frame:
    """Inverse of :func:`frame_to_tensor`: crop the padding, upscale to the source size."""
    img = x[0, :, : geom.coded_height, : geom.coded_width].clamp(0, 1).mul(255.0).round()
    rgb = img.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    if (geom.coded_width, geom.coded_height) != (geom.width, geom.height):
        import cv2

        rgb = cv2.resize(rgb, (geom.width, geom.height), interpolation=cv2.INTER_LINEAR)
    return Frame.from_rgb(rgb, bit_depth=bit_depth, matrix=matrix, index=index)
