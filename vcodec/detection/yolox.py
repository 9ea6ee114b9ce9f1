"""YOLOX written natively in PyTorch, split after the stride-8 backbone stage.

The module tree mirrors the official YOLOX repository so that its ``.pth``
checkpoints load by name (``backbone.backbone.dark3...``,
``backbone.lateral_conv0...``, ``head.cls_preds.0...``).  ONNX exports are
read with the ``onnx`` package: their initializers are mapped onto the
convolutions in execution order (exports fold BatchNorm into the convolution
weights, so the model is first :meth:`YOLOX.fuse`-d into conv-with-bias form
and the folded tensors are copied in exactly).  No graph converter and no
onnxruntime is used at run time.

Input convention (YOLOX >= 0.2, the one of the shared ONNX export): BGR,
values 0..255 as float, no mean/std normalisation, letterbox padded with
grey 114 at the right/bottom.  Output of :meth:`YOLOX.raw_outputs`:
``N x A x (4 + 1 + 80)`` with the box regression undecoded (x/y offsets in
cells, log width/height), objectness and class probabilities after the
sigmoid, anchors ordered stride 8, 16, 32, row-major: exactly the ONNX
model's ``output``.

Split point: ``front`` = stem + dark2 + dark3 (stride 8; 64 channels for
nano, 96 for tiny); ``back`` = dark4 + dark5 + PAFPN neck + decoupled head + NMS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from vcodec.detection.base import COCO80, SplitDetector, postprocess_dense
from vcodec.detection.exact import serial_elementwise
from vcodec.detection.weights import load_state_dict_strict, read_state_dict, require_file, sha256_of
from vcodec.errors import ConfigError, WeightsError

__all__ = [
    "YOLOX", "YOLOX_VARIANTS", "FRONT_PREFIXES", "BaseConv", "BaseConvDetector", "DWConv", "fuse_conv_bn",
    "fuse_base_convs", "decode_dense", "make_grids",
]

#: variant -> (depth multiplier, width multiplier, depthwise convolutions)
YOLOX_VARIANTS: dict[str, tuple[float, float, bool]] = {
    "nano": (0.33, 0.25, True),
    "tiny": (0.33, 0.375, False),
    "s": (0.33, 0.50, False),
    "m": (0.67, 0.75, False),
    "l": (1.0, 1.0, False),
    "x": (1.33, 1.25, False),
}

#: state-dict key prefixes of the split front end (stem, dark2, dark3); every other key is the back end
FRONT_PREFIXES: tuple[str, ...] = (
    "backbone.backbone.stem.",
    "backbone.backbone.dark2.",
    "backbone.backbone.dark3.",
)

BN_EPS = 1e-3  # YOLOX's BatchNorm eps; needed to fold BN exactly
BN_MOMENTUM = 0.03


class BaseConv(nn.Module):
    """Conv -> BatchNorm -> SiLU; ``fuse`` folds the BatchNorm into the conv."""

    def __init__(self, cin: int, cout: int, ksize: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ksize, stride, (ksize - 1) // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))`` in inference mode."""
    fused = nn.Conv2d(
        # torch types a Conv2d's kernel_size/stride/padding as tuple[int, ...]; they are 2-tuples
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
        groups=conv.groups, bias=True,
    )
    with torch.no_grad():
        # the casts: an inference-mode BatchNorm has running statistics (track_running_stats, as
        # BaseConv's) and the conv above was built with a bias
        mean, var = cast(Tensor, bn.running_mean), cast(Tensor, bn.running_var)
        fused_bias = cast(Tensor, fused.bias)
        scale = bn.weight / torch.sqrt(var + bn.eps)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
        fused_bias.copy_((bias - mean) * scale + bn.bias)
    return fused


def fuse_base_convs(module: nn.Module) -> None:
    """Fold the BatchNorm of every :class:`BaseConv` inside ``module`` into its convolution."""
    for m in module.modules():
        if isinstance(m, BaseConv):
            m.fuse()


_D = TypeVar("_D", bound="BaseConvDetector")


class BaseConvDetector(SplitDetector):
    """A split detector built of :class:`BaseConv` blocks (YOLOX, vcodec-det).

    What such a model does with its BatchNorms is written once here: weights
    load strictly into the unfused model, then :meth:`fuse` folds every
    BatchNorm into its convolution for inference.
    """

    fused: bool = False

    def fuse(self: _D) -> _D:
        """Fold every BatchNorm into its convolution (inference only; faster, same outputs)."""
        fuse_base_convs(self)
        self.fused = True
        return self

    def _load_unfused(self, path: str | Path, what: str) -> None:
        """Load a state dict file strictly (``what`` names the model in errors); refused once fused."""
        if self.fused:
            raise WeightsError(f"{self.name}: load weights before fuse(), not after ({path})")
        load_state_dict_strict(self, read_state_dict(path, what), path, what)


class DWConv(nn.Module):
    """Depthwise k x k conv then pointwise 1x1 conv (both BaseConv)."""

    def __init__(self, cin: int, cout: int, ksize: int, stride: int = 1):
        super().__init__()
        self.dconv = BaseConv(cin, cin, ksize, stride, groups=cin)
        self.pconv = BaseConv(cin, cout, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pconv(self.dconv(x))


def _conv(depthwise: bool) -> type[nn.Module]:
    return DWConv if depthwise else BaseConv


class Focus(nn.Module):
    """Space-to-depth (2x2 -> channels) then a conv; YOLOX's stem."""

    def __init__(self, cin: int, cout: int, ksize: int = 1):
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, ksize, 1)

    def forward(self, x: Tensor) -> Tensor:
        # the channel order (tl, bl, tr, br) is the one the official weights expect
        tl, tr = x[..., ::2, ::2], x[..., ::2, 1::2]
        bl, br = x[..., 1::2, ::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), dim=1))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, shortcut: bool, expansion: float, depthwise: bool):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = _conv(depthwise)(hidden, cout, 3, 1)
        self.use_add = shortcut and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """Cross-stage partial block: two 1x1 branches, bottlenecks on one, 1x1 merge."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True, depthwise: bool = False):
        super().__init__()
        hidden = int(cout * 0.5)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = BaseConv(cin, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)])

    def forward(self, x: Tensor) -> Tensor:
        a = self.conv1(x)
        b = self.conv2(x)
        return self.conv3(torch.cat((self.m(a), b), dim=1))


class SPPBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernels])
        self.conv2 = BaseConv(hidden * (len(kernels) + 1), cout, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [m(x) for m in self.m], dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, depth: float, width: float, depthwise: bool):
        super().__init__()
        conv = _conv(depthwise)
        c = int(width * 64)
        d = max(round(depth * 3), 1)
        self.stem = Focus(3, c, ksize=3)
        self.dark2 = nn.Sequential(conv(c, c * 2, 3, 2), CSPLayer(c * 2, c * 2, d, depthwise=depthwise))
        self.dark3 = nn.Sequential(
            conv(c * 2, c * 4, 3, 2), CSPLayer(c * 4, c * 4, d * 3, depthwise=depthwise)
        )
        self.dark4 = nn.Sequential(
            conv(c * 4, c * 8, 3, 2), CSPLayer(c * 8, c * 8, d * 3, depthwise=depthwise)
        )
        self.dark5 = nn.Sequential(
            conv(c * 8, c * 16, 3, 2),
            SPPBottleneck(c * 16, c * 16),
            CSPLayer(c * 16, c * 16, d, shortcut=False, depthwise=depthwise),
        )


class YOLOPAFPN(nn.Module):
    """Backbone plus the path-aggregation neck (its attribute names match the official repo)."""

    def __init__(self, depth: float, width: float, depthwise: bool):
        super().__init__()
        conv = _conv(depthwise)
        c3, c4, c5 = int(256 * width), int(512 * width), int(1024 * width)
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width, depthwise)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise)
        self.bu_conv2 = conv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise)
        self.bu_conv1 = conv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise)

    def neck(self, x2: Tensor, x1: Tensor, x0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        fpn_out0 = self.lateral_conv0(x0)
        f = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class YOLOXHead(nn.Module):
    """Decoupled head: per level a stem, a class branch and a box/objectness branch."""

    def __init__(self, num_classes: int, width: float, depthwise: bool):
        super().__init__()
        conv = _conv(depthwise)
        hidden = int(256 * width)
        chans = [int(c * width) for c in (256, 512, 1024)]
        self.stems = nn.ModuleList([BaseConv(c, hidden, 1, 1) for c in chans])
        self.cls_convs = nn.ModuleList(
            [nn.Sequential(conv(hidden, hidden, 3, 1), conv(hidden, hidden, 3, 1)) for _ in chans]
        )
        self.reg_convs = nn.ModuleList(
            [nn.Sequential(conv(hidden, hidden, 3, 1), conv(hidden, hidden, 3, 1)) for _ in chans]
        )
        self.cls_preds = nn.ModuleList([nn.Conv2d(hidden, num_classes, 1) for _ in chans])
        self.reg_preds = nn.ModuleList([nn.Conv2d(hidden, 4, 1) for _ in chans])
        self.obj_preds = nn.ModuleList([nn.Conv2d(hidden, 1, 1) for _ in chans])

    def forward(self, feats: tuple[Tensor, ...]) -> list[Tensor]:
        """Per level ``N x (4 + 1 + C) x h x w`` logits (regression raw, obj/cls before sigmoid)."""
        outs = []
        for k, x in enumerate(feats):
            x = self.stems[k](x)
            cls = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            outs.append(torch.cat([self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat), cls], 1))
        return outs


_GRID_CACHE: dict[tuple[object, ...], tuple[Tensor, Tensor]] = {}


def make_grids(
    shapes: list[tuple[int, int]], strides: list[int], device: torch.device
) -> tuple[Tensor, Tensor]:
    """(A x 2 cell x/y, A x 1 stride) for levels of the given h x w, row-major."""
    key = (tuple(shapes), tuple(strides), str(device))
    if key not in _GRID_CACHE:
        grids, strs = [], []
        for (h, w), s in zip(shapes, strides, strict=False):
            yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grids.append(torch.stack((xv, yv), 2).reshape(-1, 2))
            strs.append(torch.full((h * w, 1), float(s)))
        if len(_GRID_CACHE) > 64:  # many input sizes: do not grow without bound
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = (torch.cat(grids).float().to(device), torch.cat(strs).to(device))
    return _GRID_CACHE[key]


def flatten_levels(levels: list[Tensor]) -> Tensor:
    """Per-level ``N x K x h x w`` -> ``N x A x K`` (stride 8 first, row-major)."""
    return torch.cat([x.flatten(2) for x in levels], 2).permute(0, 2, 1)


def decode_dense(raw: Tensor, shapes: list[tuple[int, int]], strides: list[int]) -> Tensor:
    """Undecoded ``N x A x (4+1+C)`` (probabilities already applied) -> cx, cy, w, h in pixels."""
    grid, stride = make_grids(shapes, strides, raw.device)
    xy = (raw[..., :2] + grid) * stride
    # exp and sigmoid slice by slice: their bits must not follow the thread count (exact.py)
    wh = serial_elementwise(torch.exp_, raw[..., 2:4].clone()) * stride
    return torch.cat([xy, wh, raw[..., 4:]], -1)


def levels_to_raw(levels: list[Tensor]) -> Tensor:
    """Per-level head logits -> ``N x A x (4 + 1 + C)``: undecoded boxes, objectness and class
    probabilities."""
    out = flatten_levels(levels)
    return torch.cat([out[..., :4], serial_elementwise(torch.sigmoid_, out[..., 4:].clone())], -1)


def raw_to_dense(raw: Tensor, features: Tensor, strides: list[int]) -> Tensor:
    """``levels_to_raw`` output of stride-8 split ``features`` -> boxes decoded in input pixels."""
    h, w = features.shape[-2:]
    return decode_dense(raw, [(h, w), (h // 2, w // 2), (h // 4, w // 4)], strides)


class YOLOX(BaseConvDetector):
    """A YOLOX detector (variant ``nano``, ``tiny``, ``s``, ``m``, ``l`` or ``x``) with the split
    interface."""

    input_format = "BGR float32 0..255 (no normalisation), letterbox/pad grey 114, N x 3 x H x W"
    strides = [8, 16, 32]

    def __init__(self, variant: str = "nano", num_classes: int = 80, **kw: float) -> None:
        if variant not in YOLOX_VARIANTS:
            raise ConfigError(f"unknown YOLOX variant {variant!r}; use one of {sorted(YOLOX_VARIANTS)}")
        super().__init__(**kw)  # type: ignore[arg-type]
        depth, width, depthwise = YOLOX_VARIANTS[variant]
        self.variant = variant
        self.name = f"yolox-{variant}"
        self.num_classes = num_classes
        self.split_channels = int(256 * width)
        self.active_classes = list(range(num_classes))
        self.class_names = COCO80 if num_classes == 80 else [f"class{i}" for i in range(num_classes)]
        self.backbone = YOLOPAFPN(depth, width, depthwise)
        self.head = YOLOXHead(num_classes, width, depthwise)
        self.fused = False
        self._init_like_yolox()
        self.eval()

    def _init_like_yolox(self) -> None:
        # prior probability 0.01 for objectness/class logits, as the official init
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = BN_EPS, BN_MOMENTUM
        bias = -float(np.log((1 - 0.01) / 0.01))
        for conv in list(self.head.cls_preds) + list(self.head.obj_preds):
            nn.init.constant_(cast(Tensor, conv.bias), bias)  # the prediction convs have a bias

    def front_modules(self) -> nn.Module:
        bb = self.backbone.backbone
        return nn.ModuleList([bb.stem, bb.dark2, bb.dark3])

    def front(self, x: Tensor) -> Tensor:
        self.check_input(x)
        bb = self.backbone.backbone
        return bb.dark3(bb.dark2(bb.stem(x)))

    def head_levels(self, features: Tensor) -> list[Tensor]:
        """Split features -> per-level head logits (the whole back end before decoding)."""
        bb = self.backbone.backbone
        x1 = bb.dark4(features)
        x0 = bb.dark5(x1)
        return self.head(self.backbone.neck(features, x1, x0))

    def raw_outputs(self, features: Tensor) -> Tensor:
        """Split features -> the ONNX export's ``output`` (``N x A x 85``, undecoded boxes)."""
        return levels_to_raw(self.head_levels(features))

    def dense(self, features: Tensor) -> Tensor:
        """Split features -> decoded ``N x A x (cx, cy, w, h, obj, cls...)`` in input pixels."""
        return raw_to_dense(self.raw_outputs(features), features, self.strides)

    def back_raw(self, features: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        return postprocess_dense(
            self.dense(features), self.active_classes, self.score_threshold, self.nms_threshold,
            self.max_detections, self.class_agnostic_nms,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Input tensor -> ``raw_outputs`` (what the ONNX export computes)."""
        return self.raw_outputs(self.front(x))

    # -- weights (fuse(): BaseConvDetector) -------------------------------
    def conv_execution_order(self) -> list[nn.Conv2d]:
        """Every Conv2d in the order a forward pass runs them (the order of an ONNX export)."""
        order: list[nn.Conv2d] = []
        hooks = [
            m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
            for m in self.modules()
            if isinstance(m, nn.Conv2d)
        ]
        try:
            with torch.no_grad():
                self.forward(torch.zeros(1, 3, 64, 64))
        finally:
            for h in hooks:
                h.remove()
        return order

    def load_pth(self, path: str | Path) -> YOLOX:
        """Load an official YOLOX ``.pth`` checkpoint (``{'model': state_dict, ...}``) and fuse."""
        self._load_unfused(path, f"YOLOX-{self.variant}")
        return self.fuse()

    def load_onnx(self, path: str | Path) -> YOLOX:
        """Map the initializers of a YOLOX ONNX export onto this (fused) model."""
        p = require_file(path, f"YOLOX-{self.variant}")
        convs = _onnx_conv_weights(p)
        self.fuse()
        order = self.conv_execution_order()
        what = f"YOLOX-{self.variant}"
        if len(convs) != len(order):
            raise WeightsError(
                f"{str(p)!r} has {len(convs)} convolutions but {what} has {len(order)}; "
                f"it is an export of another architecture or variant"
            )
        for i, (mod, (name, weight, bias, group, stride)) in enumerate(zip(order, convs, strict=True)):
            if (
                tuple(weight.shape) != tuple(mod.weight.shape)
                or group != mod.groups
                or stride != mod.stride[0]
            ):
                raise WeightsError(
                    f"{str(p)!r} does not fit {what}: convolution {i} ({name}) has weight "
                    f"{tuple(weight.shape)}, groups {group}, stride {stride} but the model has "
                    f"{tuple(mod.weight.shape)}, groups {mod.groups}, stride {mod.stride[0]}; "
                    "another variant?"
                )
            with torch.no_grad():
                mod.weight.copy_(torch.from_numpy(weight))
                if mod.bias is None:
                    raise WeightsError(  # pragma: no cover
                        f"{what}: convolution {i} has no bias after fuse()"
                    )
                mod.bias.copy_(torch.from_numpy(bias) if bias is not None else torch.zeros_like(mod.bias))
        return self

    def load(self, path: str | Path) -> YOLOX:
        """Load ``.onnx`` exports or PyTorch checkpoints, chosen by the file's content."""
        p = require_file(path, f"YOLOX-{self.variant}")
        with open(p, "rb") as f:
            head = f.read(4)
        # PyTorch checkpoints are zip archives (PK) or legacy pickles (0x80)
        if head[:2] == b"PK" or head[:1] == b"\x80":
            return self.load_pth(p)
        if p.suffix.lower() == ".onnx" or head[:1] == b"\x08":
            return self.load_onnx(p)
        raise WeightsError(
            f"{str(p)!r} is neither a PyTorch checkpoint nor an ONNX export; "
            f"pass an official YOLOX .pth or .onnx file"
        )


def _onnx_conv_weights(path: Path) -> list[tuple[str, np.ndarray, np.ndarray | None, int, int]]:
    """(weight name, weight, bias, groups, stride) of every Conv node, in graph order."""
    import onnx  # only needed for this path
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:
        raise WeightsError(
            f"{str(path)!r} is not a readable ONNX file ({type(exc).__name__}); pass a YOLOX .onnx export"
        ) from None
    inits = {t.name: t for t in model.graph.initializer}
    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        wname = node.input[1]
        if wname not in inits:
            raise WeightsError(
                f"{str(path)!r}: convolution weight {wname!r} is not an initializer; "
                f"export the model with constant weights (do_constant_folding=True)"
            )
        weight = numpy_helper.to_array(inits[wname]).astype(np.float32)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in inits:
                raise WeightsError(f"{str(path)!r}: convolution bias {node.input[2]!r} is not an initializer")
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        strides = list(attrs.get("strides", [1, 1]))
        convs.append((wname, weight, bias, int(attrs.get("group", 1)), int(strides[0])))
    if not convs:
        raise WeightsError(f"{str(path)!r} contains no convolutions; it is not a YOLOX export")
    return convs


def build_yolox(variant: str, weights: str | Path | None = None, **kw: Any) -> YOLOX:
    """A YOLOX model; with ``weights`` (``.pth`` or ``.onnx``) loaded and fused, else random init."""
    model = YOLOX(variant, **kw)
    if weights is not None:
        model.load(weights)
        model.weights_sha256 = sha256_of(weights)
    model.eval()
    return model

