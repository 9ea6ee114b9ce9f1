"""``vcodec-det``: the project's compact default detector.

Design (see docs/DETECTION.md for the reasoning and the numbers):

* **front** = the YOLOX-Nano stem, dark2 and dark3 stages (stride 8, 64
  channels), *frozen* with YOLOX-Nano's weights.  The split features of
  ``vcodec-det`` are therefore exactly those of ``yolox-nano``: one base-layer
  latent transform ``T`` serves both back ends, and the back end could be
  trained on cached features (cheap on a CPU).
* **back** = a light path written for this project: two depthwise-separable
  down-sampling stages (stride 16 and 32, CSP blocks), a top-down fusion of
  the three levels at 64 channels and a single coupled head per level that
  predicts YOLOX-style box offsets, objectness and 6 traffic classes.
  About a tenth of YOLOX-Nano's back-end compute, so base-only decode +
  detect stays real-time on two cores.

Outputs use the YOLOX anchor layout and decoding (strides 8/16/32, one
anchor point per cell), which is what makes dense output distillation from
YOLOX-Nano straightforward (``tools/train_det.py``).  Class ids are mapped
back to COCO80 ids (person 0, bicycle 1, car 2, motorcycle 3, bus 5, truck 7).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import numpy as np
from torch import Tensor, nn

from vcodec.detection.base import COCO80, postprocess_dense
from vcodec.detection.weights import sha256_of
from vcodec.detection.yolox import (
    BaseConv,
    BaseConvDetector,
    CSPLayer,
    DWConv,
    Focus,
    fuse_base_convs,
    levels_to_raw,
    raw_to_dense,
)
from vcodec.errors import ConfigError, WeightsError

__all__ = ["VcodecDet", "VCODEC_DET_CLASSES", "SHIPPED_WEIGHTS", "SHIPPED_RECORD", "load_shipped"]

#: COCO80 ids vcodec-det detects, in the order of its class channels
VCODEC_DET_CLASSES: list[int] = [0, 1, 2, 3, 5, 7]

_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED_WEIGHTS = _WEIGHTS_DIR / "vcodec-det.pt"
SHIPPED_RECORD = _WEIGHTS_DIR / "vcodec-det.json"


class VcodecDet(BaseConvDetector):
    """Compact split detector for traffic/surveillance classes.  See the module docstring."""

    name = "vcodec-det"
    input_format = "BGR float32 0..255 (no normalisation), letterbox/pad grey 114, N x 3 x H x W"
    strides = [8, 16, 32]

    def __init__(
        self, classes: list[int] | None = None, width: int = 64, score_power: float = 1.0, **kw: float
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        if not 0.0 < score_power <= 4.0:
            raise ConfigError(f"vcodec-det score_power must be in (0, 4], got {score_power}")
        #: reported score = raw score ** score_power; distillation leaves the raw scores
        #: under-confident, and this monotonic map (fitted on training frames, see the record)
        #: makes the usual 0.3 threshold mean what it means for YOLOX; rankings and mAP are unchanged
        self.score_power = float(score_power)
        self.active_classes = list(VCODEC_DET_CLASSES if classes is None else classes)
        self.class_names = COCO80
        self.num_classes = len(self.active_classes)
        self.split_channels = 64
        # front: YOLOX-Nano's first three stages (same attribute layout as CSPDarknet)
        self.stem = Focus(3, 16, ksize=3)
        self.dark2 = nn.Sequential(DWConv(16, 32, 3, 2), CSPLayer(32, 32, 1, depthwise=True))
        self.dark3 = nn.Sequential(DWConv(32, 64, 3, 2), CSPLayer(64, 64, 3, depthwise=True))
        # the front is frozen teacher weights that come BatchNorm-folded (from the ONNX
        # export), so it is built in conv-with-bias form from the start
        fuse_base_convs(self.front_modules())
        # back: light pyramid
        c16, c32 = 2 * width, 3 * width
        self.down16 = nn.Sequential(DWConv(64, c16, 3, 2), CSPLayer(c16, c16, 1, depthwise=True))
        self.down32 = nn.Sequential(
            DWConv(c16, c32, 3, 2), CSPLayer(c32, c32, 1, shortcut=False, depthwise=True)
        )
        self.lat32 = BaseConv(c32, width, 1)
        self.lat16 = BaseConv(c16, width, 1)
        self.fuse16 = DWConv(width, width, 3)
        self.fuse8 = DWConv(width, width, 3)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head_convs = nn.ModuleList(
            [nn.Sequential(DWConv(width, width, 3), DWConv(width, width, 3)) for _ in self.strides]
        )
        self.preds = nn.ModuleList([nn.Conv2d(width, 5 + self.num_classes, 1) for _ in self.strides])
        prior = -float(np.log((1 - 0.01) / 0.01))
        for p in self.preds:  # the nn.Conv2d (with bias) just built
            nn.init.zeros_(cast(Tensor, p.weight))
            nn.init.constant_(cast(Tensor, p.bias), prior)
            nn.init.zeros_(cast(Tensor, p.bias)[:4])
        self.fused = False
        self.eval()

    def front_modules(self) -> nn.Module:
        return nn.ModuleList([self.stem, self.dark2, self.dark3])

    def front(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.dark3(self.dark2(self.stem(x)))

    def head_levels(self, features: Tensor) -> list[Tensor]:
        """Split features -> per-level logits ``N x (4 + 1 + C) x h x w`` (box raw, obj, classes)."""
        c16 = self.down16(features)
        c32 = self.down32(c16)
        t32 = self.lat32(c32)
        t16 = self.fuse16(self.lat16(c16) + self.up(t32))
        t8 = self.fuse8(features + self.up(t16))
        return [p(h(t)) for t, h, p in zip((t8, t16, t32), self.head_convs, self.preds, strict=True)]

    def raw_outputs(self, features: Tensor) -> Tensor:
        """``N x A x (4 + 1 + C)``: undecoded boxes, objectness and class probabilities."""
        return levels_to_raw(self.head_levels(features))

    def dense(self, features: Tensor) -> Tensor:
        return raw_to_dense(self.raw_outputs(features), features, self.strides)

    def back_raw(self, features: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        raw_threshold = self.score_threshold ** (1.0 / self.score_power)
        out = postprocess_dense(
            self.dense(features), self.active_classes, raw_threshold, self.nms_threshold,
            self.max_detections, self.class_agnostic_nms,
        )
        return [(b, s.pow(self.score_power), c) for b, s, c in out]

    def back_modules(self) -> nn.Module:
        return nn.ModuleList(
            [
                self.down16,
                self.down32,
                self.lat32,
                self.lat16,
                self.fuse16,
                self.fuse8,
                self.head_convs,
                self.preds,
            ]
        )

    def load(self, path: str | Path) -> VcodecDet:
        """Load a vcodec-det state dict (``.pt``) and fuse."""
        self._load_unfused(path, "vcodec-det")
        self.weights_sha256 = sha256_of(path)
        return self.fuse()


def load_shipped(**kw: float) -> VcodecDet:
    """vcodec-det with the weights shipped in the package, checked against their sha256 record."""
    if not SHIPPED_WEIGHTS.is_file() or not SHIPPED_RECORD.is_file():
        raise WeightsError(
            f"the shipped vcodec-det weights are missing ({SHIPPED_WEIGHTS}); reinstall vcodec "
            f"or train them with tools/train_det.py and pass --weights"
        )
    record = json.loads(SHIPPED_RECORD.read_text())
    digest = sha256_of(SHIPPED_WEIGHTS)
    if record.get("sha256") != digest:
        raise WeightsError(
            f"{SHIPPED_WEIGHTS} has sha256 {digest[:16]}... but {SHIPPED_RECORD.name} records "
            f"{str(record.get('sha256'))[:16]}...; the package is corrupted, reinstall vcodec"
        )
    config = record.get("config", {})
    model = VcodecDet(
        classes=record.get("classes"), width=int(config.get("width", 64)),
        score_power=float(config.get("score_power", 1.0)), **kw,
    )
    return model.load(SHIPPED_WEIGHTS)
