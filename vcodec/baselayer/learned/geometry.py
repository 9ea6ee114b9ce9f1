"""Frames to and from the learned base layer's input tensors, in the base-layer geometry.

:class:`~vcodec.baselayer.geometry.BaseGeometry` (scale, then pad bottom/right)
lives in :mod:`vcodec.baselayer.geometry`, below the protocol, so both modes and
the detector share it; it is re-exported here for the learned mode's callers.
"""

from __future__ import annotations

import numpy as np
import torch

from vcodec.baselayer.geometry import MIN_LONG_SIDE, PAD_VALUE, BaseGeometry, check_long_side
from vcodec.io.frame import Frame

__all__ = ["BaseGeometry", "MIN_LONG_SIDE", "PAD_VALUE", "check_long_side", "frame_to_tensor",
           "tensor_to_frame"]


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
