"""torchvision detectors (Faster R-CNN, RetinaNet, FCOS; ResNet-50 FPN) behind the split interface.

The split is after the ResNet stage ``layer2`` (stride 8).  RetinaNet and FCOS
build their FPN from ``layer2..layer4``, so their split features are the
512-channel ``layer2`` output.  Faster R-CNN's FPN also reads ``layer1``
(stride 4, 256 channels): its split tensor carries that map too, moved to
stride 8 losslessly by pixel-unshuffle (256 x 4 = 1024 channels) and
concatenated after ``layer2``: 1536 channels.  The back end undoes the
shuffle, so ``back(front(x))`` is exactly the unsplit model on ``x``.

torchvision's own transform (resize to 800 px) is bypassed: the picture is
prepared like every vcodec detector (letterbox or pad), converted to RGB in
0..1 and normalised with the model's ImageNet mean/std inside ``front``.
Weights come only from a local state-dict file the user gives (torchvision
``*.pth`` files work); without one the model is randomly initialised, which
is only useful for testing the plumbing.  Labels (COCO category ids 1..90)
are mapped to COCO80 ids.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vcodec.detection.base import COCO80_TO_CATEGORY_ID, SplitDetector
from vcodec.detection.weights import load_state_dict_strict, read_state_dict
from vcodec.errors import ConfigError

__all__ = ["TorchvisionDetector", "TV_MODELS"]

#: registry name -> (torchvision builder name, uses layer1 in its FPN)
TV_MODELS: dict[str, tuple[str, bool]] = {
    "fasterrcnn-r50-fpn": ("fasterrcnn_resnet50_fpn", True),
    "retinanet-r50-fpn": ("retinanet_resnet50_fpn", False),
    "fcos-r50-fpn": ("fcos_resnet50_fpn", False),
}

# COCO category id (0..90) -> COCO80 id, -1 for the unused ids (background, "N/A")
_CAT_TO_80 = np.full(92, -1, dtype=np.int64)
_CAT_TO_80[COCO80_TO_CATEGORY_ID] = np.arange(80)


class TorchvisionDetector(SplitDetector):
    """A torchvision ResNet-50-FPN detector split after ``layer2``."""

    input_format = "RGB float32 0..1, letterbox/pad grey 114, N x 3 x H x W (ImageNet normalisation in front)"
    # ImageNet normalisation, registered as buffers in __init__
    mean: Tensor
    std: Tensor

    def __init__(
        self, name: str, weights: str | Path | None = None, split_after: str = "layer2", **kw: float
    ):
        if name not in TV_MODELS:
            raise ConfigError(f"unknown torchvision detector {name!r}; use one of {sorted(TV_MODELS)}")
        if split_after != "layer2":
            raise ConfigError(
                f"{name}: split_after={split_after!r} is not supported; "
                "the split is after 'layer2' (stride 8)"
            )
        super().__init__(**kw)  # type: ignore[arg-type]
        import torchvision.models.detection as tvd

        builder, self.uses_layer1 = TV_MODELS[name]
        self.name = name
        self.split_after = split_after
        # never download: no weights, no backbone weights; num_classes of the COCO checkpoints
        self.model = getattr(tvd, builder)(weights=None, weights_backbone=None, num_classes=91)
        self.pretrained = weights is not None
        if weights is not None:
            state = read_state_dict(weights, name)
            load_state_dict_strict(self.model, state, weights, name)
        self.split_channels = 512 + (256 * 4 if self.uses_layer1 else 0)
        self.register_buffer(
            "mean", torch.tensor(self.model.transform.image_mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(self.model.transform.image_std).view(1, 3, 1, 1), persistent=False
        )
        self._apply_thresholds()
        self.eval()

    def _apply_thresholds(self) -> None:
        m = self.model
        if hasattr(m, "roi_heads"):
            m.roi_heads.score_thresh = self.score_threshold
            m.roi_heads.nms_thresh = self.nms_threshold
            m.roi_heads.detections_per_img = self.max_detections
        else:
            m.score_thresh = self.score_threshold
            m.nms_thresh = self.nms_threshold
            m.detections_per_img = self.max_detections

    def to_tensor(self, bgr: np.ndarray) -> Tensor:
        rgb = np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))
        return torch.from_numpy(rgb).float().div_(255.0).unsqueeze(0)

    def front_modules(self) -> nn.Module:
        body = self.model.backbone.body
        return nn.ModuleList([body.conv1, body.bn1, body.layer1, body.layer2])

    def front(self, x: Tensor) -> Tensor:
        self.check_input(x)
        body = self.model.backbone.body
        x = (x - self.mean) / self.std
        x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
        c1 = body.layer1(x)
        c2 = body.layer2(c1)
        if self.uses_layer1:
            return torch.cat([c2, F.pixel_unshuffle(c1, 2)], 1)
        return c2

    def _pyramid(self, features: Tensor) -> OrderedDict[str, Tensor]:
        body = self.model.backbone.body
        c2 = features[:, :512]
        c3 = body.layer3(c2)
        c4 = body.layer4(c3)
        stages = {"layer2": c2, "layer3": c3, "layer4": c4}
        if self.uses_layer1:
            stages["layer1"] = F.pixel_shuffle(features[:, 512:], 2)
        # IntermediateLayerGetter's return_layers: stage name -> FPN input name, in order
        ordered = OrderedDict((out, stages[stage]) for stage, out in body.return_layers.items())
        return self.model.backbone.fpn(ordered)

    def back_raw(self, features: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        from torchvision.models.detection.image_list import ImageList

        self._apply_thresholds()
        n = features.shape[0]
        h, w = features.shape[-2] * self.split_stride, features.shape[-1] * self.split_stride
        # the heads read only the batch's shape, dtype and device from the image tensor
        images = ImageList(features.new_zeros(1, 1, 1, 1).expand(n, 3, h, w), [(h, w)] * n)
        feats = self._pyramid(features)
        m = self.model
        if hasattr(m, "roi_heads"):
            proposals, _ = m.rpn(images, feats)
            dets, _ = m.roi_heads(feats, proposals, images.image_sizes)
        else:
            flist = list(feats.values())
            head_outputs = m.head(flist)
            anchors = m.anchor_generator(images, flist)
            per_level = [x.size(2) * x.size(3) for x in flist]
            a = head_outputs["cls_logits"].size(1) // sum(per_level)
            per_level = [hw * a for hw in per_level]
            split_out = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
            split_anchors = [list(anc.split(per_level)) for anc in anchors]
            dets = m.postprocess_detections(split_out, split_anchors, images.image_sizes)
        out = []
        cat_to_80 = torch.from_numpy(_CAT_TO_80).to(features.device)
        for d in dets:
            labels = cat_to_80[d["labels"].clamp(0, 91)]
            keep = labels >= 0
            order = torch.argsort(d["scores"][keep], descending=True)
            out.append((d["boxes"][keep][order], d["scores"][keep][order], labels[keep][order]))
        return out
