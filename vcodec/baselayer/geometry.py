"""Where a source frame sits in a base layer's coded picture: working size, scale, padding.

One geometry for every base-layer mode and the detector: a W x H frame whose
long side exceeds the working size (``max_long_side``, 832 by default, or the
stream's ``--base-size``) is first downscaled (area filter) so that it fits --
spatial scalability: the base layer serves analytics at the working size, the
enhancement layer codes the difference to the upscaled x_base.  The (possibly
scaled) picture is padded at the bottom and right with grey 114 to a multiple
of 64, the same geometry as the detector's ``prepare(frame, mode="pad",
multiple=64)``, so a stride-16 latent and the detector's stride-8 features line
up.  Pure arithmetic (no torch): the protocol and both plug-ins import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vcodec.errors import ConfigError, InputError

if TYPE_CHECKING:  # the detection package is imported only when a detector runs
    from vcodec.detection.base import Geometry

__all__ = ["BaseGeometry", "MIN_LONG_SIDE", "PAD_VALUE", "check_long_side"]

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
