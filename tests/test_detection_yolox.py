"""YOLOX port: equivalence with the real ONNX export, official .pth layout, split contract.

The reference is a small evaluator of the ONNX graph written here (the
operators YOLOX exports use), so that the check needs neither onnxruntime
nor the port's own code: it walks the graph node by node from the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vcodec.detection import get_detector
from vcodec.detection.clips import iter_clip_bgr
from vcodec.detection.yolox import YOLOX
from vcodec.errors import WeightsError

# the detector tests run with one torch thread (conftest ``one_torch_thread``)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def onnx_reference(path: Path, images: torch.Tensor) -> torch.Tensor:
    """Evaluate a YOLOX ONNX graph with plain torch operators, node by node."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    env: dict[str, torch.Tensor] = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer
    }
    env[g.input[0].name] = images
    for node in g.node:
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        ins = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Conv":
            pads = list(a.get("pads", [0, 0, 0, 0]))
            assert pads[:2] == pads[2:], "asymmetric padding not used by YOLOX"
            y = F.conv2d(
                ins[0],
                ins[1],
                ins[2] if len(ins) > 2 else None,
                stride=tuple(a.get("strides", [1, 1])),
                padding=tuple(pads[:2]),
                dilation=tuple(a.get("dilations", [1, 1])),
                groups=a.get("group", 1),
            )
        elif op == "Sigmoid":
            y = torch.sigmoid(ins[0])
        elif op == "Mul":
            y = ins[0] * ins[1]
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Exp":
            y = torch.exp(ins[0])
        elif op == "Concat":
            y = torch.cat(ins, dim=a["axis"])
        elif op == "Slice":
            data, starts, ends = ins[0], ins[1].tolist(), ins[2].tolist()
            axes = ins[3].tolist() if len(ins) > 3 else list(range(len(starts)))
            steps = ins[4].tolist() if len(ins) > 4 else [1] * len(starts)
            idx = [slice(None)] * data.ndim
            for s, e, ax, st in zip(starts, ends, axes, steps, strict=False):
                idx[ax] = slice(s, min(e, data.shape[ax]), st)
            y = data[tuple(idx)]
        elif op == "MaxPool":
            pads = list(a["pads"])
            y = F.max_pool2d(
                ins[0],
                tuple(a["kernel_shape"]),
                tuple(a.get("strides", [1, 1])),
                tuple(pads[:2]),
                ceil_mode=bool(a.get("ceil_mode", 0)),
            )
        elif op == "Resize":
            assert a["mode"] == b"nearest" and a["coordinate_transformation_mode"] == b"asymmetric"
            scales = ins[2].tolist()
            assert scales[:2] == [1.0, 1.0]
            y = F.interpolate(ins[0], scale_factor=tuple(scales[2:]), mode="nearest")
        elif op == "Reshape":
            shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(ins[1].tolist())]
            y = ins[0].reshape(shape)
        elif op == "Transpose":
            y = ins[0].permute(*a["perm"])
        else:  # pragma: no cover - would mean a different export
            raise NotImplementedError(f"ONNX op {op} not handled by the test evaluator")
        env[node.output[0]] = y
    return env[g.output[0].name]


@pytest.fixture(scope="module")
def nano(yolox_nano_onnx: Path) -> YOLOX:
    det = get_detector("yolox-nano", yolox_nano_onnx)
    assert isinstance(det, YOLOX)
    return det


@pytest.fixture(scope="module")
def real_frames(clips_dir: Path) -> list[np.ndarray]:
    cars = [b for _, b in iter_clip_bgr(clips_dir / "cars_320x240.i420", step=10, max_frames=2)]
    people = [
        b for _, b in iter_clip_bgr(clips_dir / "one-by-one-person-detection.mp4", step=300, max_frames=1)
    ]
    return cars + people


@pytest.mark.shared
@pytest.mark.parametrize("mode", ["letterbox", "pad"])
def test_port_matches_onnx_on_real_frames(
    nano: YOLOX, yolox_nano_onnx: Path, real_frames: list[np.ndarray], mode: str
) -> None:
    worst = 0.0
    for bgr in real_frames:
        x, _ = nano.prepare(bgr, mode, 416)
        with torch.no_grad():
            ours = nano(x)
            ref = onnx_reference(yolox_nano_onnx, x)
        assert ours.shape == ref.shape == (1, (x.shape[2] // 8) * (x.shape[3] // 8) * 21 // 16, 85)
        worst = max(worst, float((ours - ref).abs().max()))
        # the probabilities (what decides detections) must agree tightly too
        assert float((ours[..., 4:] - ref[..., 4:]).abs().max()) < 1e-4
    assert worst < 1e-3, f"port differs from the ONNX graph by {worst}"


@pytest.mark.shared
@pytest.mark.parametrize("mode", ["letterbox", "pad"])
def test_shipped_yolox_nano_matches_onnx_on_real_frames(yolox_nano_onnx: Path, real_frames: list[np.ndarray],
                                                        mode: str) -> None:
    """The weights shipped in the package (no file given) reproduce the ONNX graph on real frames."""
    shipped = get_detector()  # the default detector: YOLOX-Nano from vcodec/weights/
    assert isinstance(shipped, YOLOX) and shipped.name == "yolox-nano"
    worst = 0.0
    for bgr in real_frames:
        x, _ = shipped.prepare(bgr, mode, 416)
        with torch.no_grad():
            ours, ref = shipped(x), onnx_reference(yolox_nano_onnx, x)
        worst = max(worst, float((ours - ref).abs().max()))
        assert float((ours[..., 4:] - ref[..., 4:]).abs().max()) < 1e-4
    assert worst < 1e-3, f"shipped YOLOX-Nano differs from the ONNX graph by {worst}"


@pytest.mark.shared
def test_real_detections_split_equals_detect(nano: YOLOX, real_frames: list[np.ndarray]) -> None:
    bgr = real_frames[0]
    d = nano.detect(bgr)
    x, g = nano.prepare(bgr, "letterbox", 416)
    with torch.no_grad():
        [d2] = nano.back(nano.front(x), g)
    assert nano.front(x).shape == (1, 64, 52, 52)
    np.testing.assert_array_equal(d.boxes, d2.boxes)
    np.testing.assert_array_equal(d.class_ids, d2.class_ids)
    # the cars clip: cars are found, inside the 320x240 picture
    assert len(d) >= 2 and 2 in d.class_ids.tolist()
    assert np.all(d.boxes[:, 2] <= 320) and np.all(d.boxes[:, 3] <= 240)
    # pad mode finds the same cars at native scale (boxes agree roughly)
    dp = nano.detect(bgr, mode="pad")
    best = d.boxes[int(np.argmax(d.scores))]
    ious = _iou(best, dp.boxes)
    assert ious.max() > 0.7


def _iou(b: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(b[0], boxes[:, 0])
    y0 = np.maximum(b[1], boxes[:, 1])
    x1 = np.minimum(b[2], boxes[:, 2])
    y1 = np.minimum(b[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / (area(b) + area(boxes) - inter)


@pytest.mark.shared
def test_onnx_of_another_variant_is_refused(yolox_nano_onnx: Path) -> None:
    with pytest.raises(WeightsError, match=r"yolox_nano\.onnx.*convolutions"):
        get_detector("yolox-tiny", yolox_nano_onnx)


def test_official_pth_layout_loads_and_fuses(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = YOLOX("nano")
    # non-trivial BatchNorm statistics so that folding them is really exercised
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    state = ref.state_dict()
    # the official key layout
    for key in (
        "backbone.backbone.stem.conv.conv.weight",
        "backbone.backbone.dark3.1.m.2.conv2.dconv.bn.running_var",
        "backbone.lateral_conv0.conv.weight",
        "backbone.C3_n4.conv3.bn.bias",
        "head.cls_preds.0.weight",
        "head.reg_convs.2.1.pconv.conv.weight",
        "head.obj_preds.1.bias",
    ):
        assert key in state
    p = tmp_path / "yolox_nano.pth"
    torch.save({"model": state, "start_epoch": 300}, p)
    det = get_detector("yolox-nano", p)
    assert det.fused
    x = torch.rand(1, 3, 96, 64) * 255
    with torch.no_grad():
        assert torch.allclose(ref.eval()(x), det(x), atol=1e-4)


def test_tiny_split_shape() -> None:
    det = YOLOX("tiny")
    x = torch.rand(1, 3, 64, 96) * 255
    f = det.front(x)
    assert det.split_channels == 96 and f.shape == (1, 96, 8, 12)
    assert det.raw_outputs(f).shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 85)
