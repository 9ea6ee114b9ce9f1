"""Where ``vcodec eval`` runs its detector on pixels: the base layer's working geometry.

The base layer codes a picture scaled so that its long side fits the *working
size* (``--base-size``, else the base model's ``max_long_side``; smaller frames
keep their size) and padded right/bottom to the model's multiple (64), and its
detector back end works on features of that picture.  A comparison is fair only
when the detector on pixels (the reference that makes pseudo ground truth, the
x265/x264 anchors, vcodec's full decode) sees the same geometry, so every pixel
system goes through :func:`detect_at`, which applies exactly the base layer's
rule (:meth:`vcodec.baselayer.learned.base_codec.BaseGeometry.for_size`, area downscaling
as the base encoder does, grey padding) and hands the detector the geometry the
base layer's analytics use (:meth:`BaseGeometry.to_detector`).

``--anchor-size N`` adds labelled anchors whose detector works at a long side of
``N`` by the same rule (e.g. the 416 of earlier reports), reported beside.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcodec.errors import ConfigError, WeightsError

__all__ = ["WorkingSize", "working_size", "working_size_of", "detect_at"]


@dataclass(frozen=True)
class WorkingSize:
    """A long side and pad multiple, with where they came from (for reports)."""

    long_side: int
    multiple: int = 64
    source: str = ""

    def geometry(self, width: int, height: int) -> Any:
        """The :class:`~vcodec.baselayer.learned.base_codec.BaseGeometry` of a ``width x height`` picture."""
        from vcodec.baselayer.geometry import BaseGeometry

        return BaseGeometry.for_size(width, height, self.long_side, self.multiple)

    def describe(self, width: int, height: int) -> str:
        g = self.geometry(width, height)
        scaled = (
            f"scaled to {g.coded_width}x{g.coded_height}"
            if (g.coded_width, g.coded_height) != (width, height)
            else "not scaled"
        )
        return (
            f"long side {self.long_side} ({self.source}): {width}x{height} {scaled}, "
            f"padded to {g.padded_width}x{g.padded_height}"
        )

    def key(self) -> list[int]:
        """What cache keys hold of it (the source is a label only)."""
        return [self.long_side, self.multiple]


def working_size_of(base: Any) -> WorkingSize:
    """The working size of a :class:`vcodec.codec.base_layer.BaseLayer` made for encoding.

    Learned mode: its ``base_size`` if set, else the model's ``cfg.max_long_side``; feature
    mode: its ``max_long_side``.  The multiple is the mode's pad multiple."""
    codec = getattr(base, "codec", None)
    cfg = getattr(codec, "cfg", None)
    if cfg is not None and hasattr(cfg, "max_long_side"):  # learned
        size = getattr(base, "base_size", None)
        source = "--base-size" if size else f"base model {getattr(base, 'codec_id', '?')}"
        return WorkingSize(int(size or cfg.max_long_side), int(cfg.multiple), source)
    if hasattr(base, "max_long_side"):  # features
        return WorkingSize(int(base.max_long_side), int(getattr(base, "multiple", 64)), "feature base layer")
    raise ConfigError(f"cannot tell the working size of base layer {type(base).__name__}")


def working_size(
    base_model: str | None, base_size: int | None, mode: str = "learned", required: bool = True
) -> WorkingSize:
    """The base layer's working size for ``base_model`` (None: the shipped one) and ``--base-size``.

    When the model cannot be loaded and ``required`` is false (an anchors-only run), the
    given ``base_size`` or the default model geometry (832, padded to 64) is used."""
    from vcodec.codec.base_layer import get_base_factory, kind_for_mode

    try:
        base = get_base_factory(kind_for_mode(mode)).for_encoding(base_model, base_size)
    except WeightsError:
        if required:
            raise
        from vcodec.baselayer.learned.base_net import BaseNetConfig

        d = BaseNetConfig()
        if base_size is not None:
            return WorkingSize(int(base_size), int(d.multiple), "--base-size")
        return WorkingSize(int(d.max_long_side), int(d.multiple), "default base geometry; no base model")
    return working_size_of(base)


def _prepare(detector: Any, frame: Any, size: WorkingSize) -> tuple[Any, Any]:
    """(input tensor, detector Geometry) of one picture at ``size``: area downscale, grey pad."""
    import cv2

    from vcodec.detection.base import PAD_VALUE, to_bgr

    bgr = to_bgr(frame)
    h, w = bgr.shape[:2]
    g = size.geometry(w, h)
    if (g.coded_width, g.coded_height) != (w, h):
        # INTER_AREA: the base encoder's downscale (vcodec.baselayer.learned.base_codec.frame_to_tensor)
        bgr = cv2.resize(bgr, (g.coded_width, g.coded_height), interpolation=cv2.INTER_AREA)
    padded = np.full((g.padded_height, g.padded_width, 3), PAD_VALUE, dtype=np.uint8)
    padded[: g.coded_height, : g.coded_width] = bgr
    return detector.to_tensor(padded), g.to_detector()


def detect_at(detector: Any, frames: Iterable[Any], size: WorkingSize) -> Iterator[tuple[int, Any]]:
    """``(frame_index, Detections)`` of ``detector`` on each picture at ``size``'s geometry.

    Frames (``Frame`` or BGR arrays, indexed by position) are scaled and padded as the base
    layer scales and pads them; boxes come back in source pixels."""
    import torch

    from vcodec.io.frame import Frame

    if size.multiple % int(getattr(detector, "size_multiple", 32)):
        raise ConfigError(
            f"pad multiple {size.multiple} is not a multiple of detector "
            f"{getattr(detector, 'name', '?')}'s {detector.size_multiple}"
        )
    for i, frame in enumerate(frames):
        index = frame.index if isinstance(frame, Frame) else i
        x, geometry = _prepare(detector, frame, size)
        with torch.no_grad():
            yield index, detector.back(detector.front(x), geometry)[0]
