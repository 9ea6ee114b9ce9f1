"""Split object detectors: front end (pixels -> stride-8 features) and back end (features -> boxes).

>>> from vcodec.detection import get_detector
>>> det = get_detector()                              # YOLOX-Nano, weights shipped in the package
>>> x, geometry = det.prepare(frame, mode="pad", multiple=64)
>>> features = det.front(x)                           # N x 64 x H/8 x W/8
>>> [detections] = det.back(features, geometry)       # boxes in frame pixels

Registered names: ``yolox-nano`` (default; shipped weights, Megvii's YOLOX,
Apache-2.0, or the user's ``.pth``/``.onnx``), ``vcodec-det`` (shipped
weights; kept for streams made with ``base-vcodec-det-v2``), ``yolox-tiny``,
``yolox-s/m/l/x`` (official ``.pth`` or ``.onnx`` weights),
``fasterrcnn-r50-fpn``, ``retinanet-r50-fpn``, ``fcos-r50-fpn`` (torchvision
state dicts).  Back ends adapted to a base model's decoded features live in
:mod:`vcodec.detection.backends`.  See docs/DETECTION.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from vcodec.detection.base import COCO80, COCO80_TO_CATEGORY_ID, Detections, Geometry, SplitDetector
from vcodec.detection.shipped import SHIPPED_DETECTORS
from vcodec.registry import Registry

__all__ = [
    "COCO80",
    "COCO80_TO_CATEGORY_ID",
    "DETECTORS",
    "DEFAULT_DETECTOR",
    "SHIPPED_DETECTORS",
    "Detections",
    "Geometry",
    "SplitDetector",
    "get_detector",
    "detect_frames",
]

#: name -> factory(weights, **kwargs) -> SplitDetector
DETECTORS: Registry[Callable[..., SplitDetector]] = Registry("detector")
#: a real COCO detector out of the box (its weights ship in vcodec/weights/, see NOTICE)
DEFAULT_DETECTOR = "yolox-nano"


def _yolox_factory(variant: str) -> Callable[..., SplitDetector]:
    def make(weights: str | Path | None = None, **kw: Any) -> SplitDetector:
        from vcodec.detection.yolox import build_yolox

        if weights is None and f"yolox-{variant}" in SHIPPED_DETECTORS:
            from vcodec.detection.shipped import load_shipped_yolox

            return load_shipped_yolox(variant, **kw)
        return build_yolox(variant, weights, **kw)

    shipped = f"yolox-{variant}" in SHIPPED_DETECTORS
    make.__doc__ = (f"YOLOX-{variant}; weights: official .pth checkpoint or .onnx export "
                    f"({'the shipped weights' if shipped else 'random init'} if None)")
    return make


def _vcodec_det(weights: str | Path | None = None, **kw: Any) -> SplitDetector:
    """vcodec-det; the weights shipped in the package when ``weights`` is None."""
    from vcodec.detection.vcodec_det import VcodecDet, load_shipped

    if weights is None:
        return load_shipped(**kw)
    return VcodecDet(**kw).load(weights)


def _tv_factory(name: str) -> Callable[..., SplitDetector]:
    def make(weights: str | Path | None = None, **kw: Any) -> SplitDetector:
        from vcodec.detection.tv import TorchvisionDetector

        return TorchvisionDetector(name, weights, **kw)

    make.__doc__ = f"torchvision {name}; weights: a local state-dict file (random init if None)"
    return make


DETECTORS.register("vcodec-det", _vcodec_det)
for _v in ("nano", "tiny", "s", "m", "l", "x"):
    DETECTORS.register(f"yolox-{_v}", _yolox_factory(_v))
for _n in ("fasterrcnn-r50-fpn", "retinanet-r50-fpn", "fcos-r50-fpn"):
    DETECTORS.register(_n, _tv_factory(_n))


def get_detector(name: str = DEFAULT_DETECTOR, weights: str | Path | None = None, **kw: Any) -> SplitDetector:
    """Build a registered detector in inference mode.

    ``weights``: a local file (``.pth``/``.pt`` state dict or, for YOLOX, an
    ``.onnx`` export); ``None`` means the shipped weights for the detectors in
    :data:`SHIPPED_DETECTORS` (``yolox-nano``, ``vcodec-det``) and random
    initialisation for the others.  Keyword arguments go to the
    detector (``score_threshold``, ``nms_threshold``, ``max_detections``...).
    """
    det = DETECTORS.get(name)(weights, **kw)
    det.eval()
    return det


def detect_frames(
    detector: SplitDetector, frames: Iterable[Any], mode: str = "auto", size: int | None = None,
    max_pad_side: int = 640,
) -> Iterator[tuple[int, Detections]]:
    """Iterate ``(frame_index, Detections)`` over frames (``Frame`` or BGR arrays).

    ``mode="pad"``: native resolution padded to a multiple of 32 (the base
    layer's geometry); ``mode="letterbox"``: resized into a ``size`` square
    (the detector's default, 416); ``mode="auto"`` (default): pad when the
    picture's long side is at most ``max_pad_side``, else resize to a
    rectangle whose long side is ``size`` (416), which keeps large video at
    the object scale the detectors are trained for.
    """
    from vcodec.detection.base import fit_size, to_bgr
    from vcodec.errors import ConfigError
    from vcodec.io.frame import Frame

    if mode not in ("auto", "pad", "letterbox"):
        raise ConfigError(f"unknown detection mode {mode!r}; use auto, pad or letterbox")
    for i, frame in enumerate(frames):
        index = frame.index if isinstance(frame, Frame) else i
        if mode != "auto":
            yield index, detector.detect(frame, mode=mode, size=size)
            continue
        bgr = to_bgr(frame)
        h, w = bgr.shape[:2]
        if max(w, h) <= max_pad_side:
            yield index, detector.detect(bgr, mode="pad")
        else:
            yield (
                index,
                detector.detect(bgr, mode="letterbox", size=fit_size(w, h, size or detector.default_size)),
            )
