"""The split-detector contract shared by every detector in vcodec.

A detector is cut in two at a feature map of stride 8 (``split_stride``):

* :meth:`SplitDetector.prepare` turns a picture (a :class:`~vcodec.io.Frame`
  or a BGR ``uint8`` array) into the detector's input tensor and a
  :class:`Geometry` that remembers how the picture was scaled and padded;
* :meth:`SplitDetector.front` maps that tensor to the split features
  (``N x split_channels x H/8 x W/8``);
* :meth:`SplitDetector.back` maps split features to :class:`Detections`
  (after NMS, boxes in the ORIGINAL picture's pixels).

The learned base layer trains a latent-space transform ``T`` so that
``T(y_hat) ~ front(prepare(frame))`` and then calls ``back`` on ``T(y_hat)``;
no pixels are needed at the decoder.  Everything a caller would otherwise get
wrong (colour order, value scaling, pad value) lives inside ``prepare`` and
``front``.

All detectors share one label space: ``class_ids`` index the 80-class COCO
list :data:`COCO80` (0 = person, 2 = car, ...), whatever the detector's
native labels are, so that outputs of different detectors are comparable.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from vcodec._torchvision import batched_nms, nms
from vcodec.errors import ConfigError, InputError
from vcodec.io.frame import Frame

__all__ = [
    "COCO80",
    "COCO80_TO_CATEGORY_ID",
    "Geometry",
    "Detections",
    "SplitDetector",
    "to_bgr",
    "letterbox_geometry",
    "pad_geometry",
    "fit_size",
    "postprocess_dense",
]

#: the 80 COCO detection classes in the contiguous order detectors are trained with
COCO80: list[str] = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]

#: official COCO category id (1..90, with gaps) of each COCO80 class, for COCO JSON results
COCO80_TO_CATEGORY_ID: list[int] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57,
    58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87,
    88, 89, 90,
]

#: grey used by YOLOX for letterbox padding (and by us for every pad)
PAD_VALUE = 114


@dataclass(frozen=True)
class Geometry:
    """How a picture of ``orig_width x orig_height`` became the detector input.

    The picture was resized by ``scale`` (the same factor on both axes) and
    then padded by ``pad_left``/``pad_top``/``pad_right``/``pad_bottom``
    pixels to ``input_width x input_height``.  :meth:`to_original` maps
    boxes from input pixels back to the original picture.
    """

    orig_width: int
    orig_height: int
    input_width: int
    input_height: int
    scale: float = 1.0
    pad_left: int = 0
    pad_top: int = 0
    pad_right: int = 0
    pad_bottom: int = 0
    mode: str = "pad"

    @property
    def resized_size(self) -> tuple[int, int]:
        """(width, height) of the picture inside the input, before padding."""
        return (
            self.input_width - self.pad_left - self.pad_right,
            self.input_height - self.pad_top - self.pad_bottom,
        )

    def to_original(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """x0,y0,x1,y1 boxes in input pixels -> original picture pixels (float32)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        b[:, 0::2] = (b[:, 0::2] - self.pad_left) / self.scale
        b[:, 1::2] = (b[:, 1::2] - self.pad_top) / self.scale
        if clip:
            b[:, 0::2] = b[:, 0::2].clip(0, self.orig_width)
            b[:, 1::2] = b[:, 1::2].clip(0, self.orig_height)
        return b.astype(np.float32)

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_original` (without clipping)."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        b[:, 0::2] = b[:, 0::2] * self.scale + self.pad_left
        b[:, 1::2] = b[:, 1::2] * self.scale + self.pad_top
        return b.astype(np.float32)

    @classmethod
    def identity(cls, width: int, height: int) -> Geometry:
        return cls(width, height, width, height)


@dataclass
class Detections:
    """Detections of one picture, after NMS.

    ``boxes``: ``(N, 4)`` float32 ``x0, y0, x1, y1`` in original picture pixels;
    ``scores``: ``(N,)`` float32 in [0, 1]; ``class_ids``: ``(N,)`` int64 indexes
    into :data:`COCO80`.  Sorted by decreasing score.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    image_width: int = 0
    image_height: int = 0

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise InputError(
                f"Detections needs as many scores and class ids as boxes: "
                f"{n} boxes, {len(self.scores)} scores, {len(self.class_ids)} class ids"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def class_names(self) -> list[str]:
        return [COCO80[int(c)] if 0 <= c < len(COCO80) else str(int(c)) for c in self.class_ids]

    def filter(self, min_score: float = 0.0, classes: Sequence[int] | None = None) -> Detections:
        """A copy keeping detections with score >= ``min_score`` (and in ``classes``)."""
        keep = self.scores >= min_score
        if classes is not None:
            keep &= np.isin(self.class_ids, np.asarray(list(classes), dtype=np.int64))
        return Detections(
            self.boxes[keep], self.scores[keep], self.class_ids[keep], self.image_width, self.image_height
        )


# -- pre-processing ---------------------------------------------------------


def to_bgr(picture: Frame | np.ndarray) -> np.ndarray:
    """A :class:`Frame` or an ``H x W x 3`` BGR uint8 array -> contiguous BGR uint8."""
    if isinstance(picture, Frame):
        frame = picture.with_bit_depth(8) if picture.bit_depth != 8 else picture
        return frame.to_bgr()
    if isinstance(picture, np.ndarray):
        if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
            raise InputError(
                f"detector input must be a Frame or an H x W x 3 uint8 BGR array, "
                f"got an array of shape {picture.shape} and dtype {picture.dtype}"
            )
        return np.ascontiguousarray(picture)
    raise InputError(f"detector input must be a Frame or a numpy BGR array, got {type(picture).__name__}")


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    hw = tuple(int(s) for s in size)
    if len(hw) != 2:
        raise ConfigError(f"letterbox size must be an int or (height, width), got {size!r}")
    return hw[0], hw[1]


def letterbox_geometry(width: int, height: int, size: int | Sequence[int] = 416) -> Geometry:
    """Aspect-kept resize into ``size`` (top-left aligned, as YOLOX does)."""
    th, tw = _size_hw(size)
    if th <= 0 or tw <= 0:
        raise ConfigError(f"letterbox size must be positive, got {size!r}")
    r = min(th / height, tw / width)
    rw, rh = max(1, int(width * r)), max(1, int(height * r))
    return Geometry(width, height, tw, th, r, 0, 0, tw - rw, th - rh, "letterbox")


def fit_size(width: int, height: int, long_side: int = 416, multiple: int = 32) -> tuple[int, int]:
    """(height, width) of a rectangular letterbox: long side ``long_side``, short side
    rounded up to ``multiple`` (less padding than a square for 16:9 video)."""
    r = long_side / max(width, height)
    return (
        -(-int(round(height * r)) // multiple) * multiple,
        -(-int(round(width * r)) // multiple) * multiple,
    )


def pad_geometry(width: int, height: int, multiple: int = 32) -> Geometry:
    """No resize; pad right/bottom up to a multiple of ``multiple``."""
    if multiple <= 0:
        raise ConfigError(f"pad multiple must be positive, got {multiple}")
    tw = -(-width // multiple) * multiple
    th = -(-height // multiple) * multiple
    return Geometry(width, height, tw, th, 1.0, 0, 0, tw - width, th - height, "pad")


def apply_geometry(bgr: np.ndarray, geometry: Geometry, pad_value: int = PAD_VALUE) -> np.ndarray:
    """Resize and pad a BGR picture as ``geometry`` says."""
    rw, rh = geometry.resized_size
    img = bgr
    if (rw, rh) != (bgr.shape[1], bgr.shape[0]):
        img = cv2.resize(bgr, (rw, rh), interpolation=cv2.INTER_LINEAR)
    out = np.full((geometry.input_height, geometry.input_width, 3), pad_value, dtype=np.uint8)
    out[geometry.pad_top : geometry.pad_top + rh, geometry.pad_left : geometry.pad_left + rw] = img
    return out


# -- post-processing --------------------------------------------------------


def postprocess_dense(
    dense: Tensor,
    class_ids: Sequence[int],
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """YOLOX-style dense predictions -> per-image (boxes xyxy, scores, COCO80 ids).

    ``dense`` is ``N x A x (4 + 1 + C)``: box centre x/y, width, height in input
    pixels, objectness probability, C class probabilities; ``class_ids[c]``
    is the COCO80 id of channel c.  Score = objectness x best class probability.
    """
    ids = torch.as_tensor(list(class_ids), dtype=torch.int64, device=dense.device)
    out = []
    for pred in dense:
        cls_prob, cls_idx = pred[:, 5:].max(dim=1)
        scores = pred[:, 4] * cls_prob
        keep = scores >= score_threshold
        cxcywh, scores, cls_idx = pred[keep, :4], scores[keep], cls_idx[keep]
        boxes = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], dim=1)
        if class_agnostic:
            kept = nms(boxes, scores, nms_threshold)
        else:
            kept = batched_nms(boxes, scores, cls_idx, nms_threshold)
        kept = kept[:max_detections]
        out.append((boxes[kept], scores[kept], ids[cls_idx[kept]]))
    return out


def _check_threshold(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return value


class SplitDetector(nn.Module, abc.ABC):
    """An object detector cut at a stride-8 feature map.  See the module docstring."""

    #: registry name
    name: str = ""
    #: stride of the split features relative to the input tensor
    split_stride: int = 8
    #: channels of the split features
    split_channels: int = 0
    #: names indexed by ``Detections.class_ids`` (always :data:`COCO80`)
    class_names: list[str] = COCO80
    #: COCO80 ids this detector can output
    active_classes: list[int] = list(range(80))
    #: what ``prepare`` produces, in words
    input_format: str = ""
    #: input sizes must be multiples of this
    size_multiple: int = 32
    #: letterbox size used by :meth:`detect` by default
    default_size: int = 416
    #: sha256 of the file the weights came from (for shipped conversions: their source file);
    #: "" for random initialisation.  Adapted back ends are matched to their detector by it.
    weights_sha256: str = ""

    def __init__(
        self, score_threshold: float = 0.3, nms_threshold: float = 0.45, max_detections: int = 300,
        class_agnostic_nms: bool = False,
    ) -> None:
        super().__init__()
        self.score_threshold = _check_threshold("score_threshold", score_threshold)
        self.nms_threshold = _check_threshold("nms_threshold", nms_threshold)
        if max_detections <= 0:
            raise ConfigError(f"max_detections must be positive, got {max_detections}")
        self.max_detections = int(max_detections)
        self.class_agnostic_nms = bool(class_agnostic_nms)

    # -- pre-processing -------------------------------------------------
    def to_tensor(self, bgr: np.ndarray) -> Tensor:
        """Padded BGR uint8 picture -> 1 x 3 x H x W input tensor (detector specific)."""
        return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1))).float().unsqueeze(0)

    def prepare(
        self,
        frame: Frame | np.ndarray,
        mode: str = "letterbox",
        size: int | Sequence[int] = 416,
        multiple: int = 32,
    ) -> tuple[Tensor, Geometry]:
        """Picture -> (1 x 3 x H x W input tensor, geometry).

        ``mode="letterbox"``: aspect-kept resize into ``size`` (an int for a
        square or ``(height, width)``), padded right/bottom with grey 114.
        ``mode="pad"``: no resize, pad right/bottom to a multiple of
        ``multiple`` (the base layer uses 64 so that its stride-16 latent and
        the stride-8 split features line up pixel for pixel).
        """
        bgr = to_bgr(frame)
        h, w = bgr.shape[:2]
        if mode == "letterbox":
            geometry = letterbox_geometry(w, h, size)
            th, tw = geometry.input_height, geometry.input_width
            if th % self.size_multiple or tw % self.size_multiple:
                raise ConfigError(
                    f"letterbox size {tw}x{th} is not a multiple of {self.size_multiple} "
                    f"as detector {self.name!r} needs; pick e.g. 416 or 640"
                )
        elif mode == "pad":
            if multiple % self.size_multiple:
                raise ConfigError(
                    f"pad multiple {multiple} must be a multiple of {self.size_multiple} "
                    f"for detector {self.name!r}"
                )
            geometry = pad_geometry(w, h, multiple)
        else:
            raise ConfigError(f"unknown prepare mode {mode!r}; use 'letterbox' or 'pad'")
        return self.to_tensor(apply_geometry(bgr, geometry)), geometry

    # -- the two halves -------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"{self.name}: front() expects N x 3 x H x W, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise InputError(
                f"{self.name}: input {w}x{h} is not a multiple of {self.size_multiple}; "
                f"use prepare(..., mode='pad') or a letterbox size that is"
            )

    def check_features(self, features: Tensor) -> None:
        if features.ndim != 4 or features.shape[1] != self.split_channels:
            raise InputError(
                f"{self.name}: back() expects N x {self.split_channels} x H/8 x W/8 split features, "
                f"got {tuple(features.shape)}"
            )
        m = self.size_multiple // self.split_stride
        if features.shape[-1] % m or features.shape[-2] % m:
            raise InputError(
                f"{self.name}: split features {tuple(features.shape[-2:])} must be a multiple of {m} "
                f"(inputs a multiple of {self.size_multiple})"
            )

    @abc.abstractmethod
    def front(self, x: Tensor) -> Tensor:
        """Input tensor (from :meth:`prepare`) -> ``N x split_channels x H/8 x W/8``."""

    @abc.abstractmethod
    def back_raw(self, features: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Split features -> per image (boxes xyxy in input pixels, scores, COCO80 ids), after NMS."""

    def back(
        self, features: Tensor, geometry: Geometry | Sequence[Geometry] | None = None
    ) -> list[Detections]:
        """Split features -> one :class:`Detections` per image, in original pixels.

        ``geometry`` is the one from :meth:`prepare` (one per image, or one for
        all); ``None`` keeps input-tensor pixels.
        """
        self.check_features(features)
        n = features.shape[0]
        if geometry is None:
            h, w = features.shape[-2] * self.split_stride, features.shape[-1] * self.split_stride
            geoms: list[Geometry] = [Geometry.identity(w, h)] * n
        elif isinstance(geometry, Geometry):
            geoms = [geometry] * n
        else:
            geoms = list(geometry)
            if len(geoms) != n:
                raise InputError(f"{self.name}: {len(geoms)} geometries for a batch of {n} feature maps")
        with torch.no_grad():
            raw = self.back_raw(features)
        result = []
        for (boxes, scores, ids), g in zip(raw, geoms, strict=False):
            b = g.to_original(boxes.float().cpu().numpy())
            result.append(
                Detections(b, scores.float().cpu().numpy(), ids.cpu().numpy(), g.orig_width, g.orig_height)
            )
        return result

    def detect(
        self,
        frame: Frame | np.ndarray,
        mode: str = "letterbox",
        size: int | Sequence[int] | None = None,
        multiple: int = 32,
    ) -> Detections:
        """``back(front(prepare(frame)))`` for one picture."""
        x, geometry = self.prepare(frame, mode, self.default_size if size is None else size, multiple)
        with torch.no_grad():
            return self.back(self.front(x), geometry)[0]

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts of the front end, the back end and the whole detector."""
        total = sum(p.numel() for p in self.parameters())
        front = sum(p.numel() for p in self.front_modules().parameters())
        return {"front": front, "back": total - front, "total": total}

    @abc.abstractmethod
    def front_modules(self) -> nn.Module:
        """The modules :meth:`front` uses (for parameter counts and freezing)."""
