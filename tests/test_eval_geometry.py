"""`vcodec eval` is fair: the detector on pixels (pseudo ground truth, anchors) sees the base layer's
geometry.

The base layer codes at its working size (``--base-size``, else the model's ``max_long_side``)
and its detector back end runs on features of that picture; the reference and the x265/x264
anchors must be detected at exactly the same geometry (issue 13, ../shared/notes/eval-geometry.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SEQUENCE

from vcodec.cli.eval import main as eval_main
from vcodec.detection.base import Geometry, SplitDetector
from vcodec.eval.geometry import WorkingSize, detect_at, working_size
from vcodec.io import Frame, open_video, open_writer

W, H = 768, 432  # wider than the 640 up to which detect_frames(mode="auto") kept native size


def _geo(g: Geometry) -> tuple:
    return (
        g.orig_width,
        g.orig_height,
        g.input_width,
        g.input_height,
        round(g.scale, 9),
        g.pad_left,
        g.pad_top,
        g.pad_right,
        g.pad_bottom,
    )


@pytest.fixture(scope="module")
def clip_768(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three frames of the bundled sequence upscaled to 768x432 (a clip above 640 made here)."""
    import cv2

    path = tmp_path_factory.mktemp("clip") / f"up_{W}x{H}.y4m"
    with open_video(SEQUENCE, frames=3) as r:
        info = r.info
        frames = [
            Frame.from_rgb(cv2.resize(f.to_rgb(), (W, H), interpolation=cv2.INTER_CUBIC), index=f.index)
            for f in r
        ]
    info.width, info.height = W, H
    info.matrix = frames[0].matrix
    with open_writer(str(path), info) as w:
        for f in frames:
            w.write(f)
    return path


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every geometry a detector back end gets, pixels or base-layer features alike."""
    calls: list[tuple] = []
    back = SplitDetector.back

    def spy(self, features, geometry=None):  # type: ignore[no-untyped-def]
        gs = [geometry] if isinstance(geometry, Geometry) else list(geometry)
        calls.extend(_geo(g) for g in gs)
        return back(self, features, geometry)

    monkeypatch.setattr(SplitDetector, "back", spy)
    return calls


def _args(clip: Path, model: Path, out: Path, *extra: str) -> list[str]:
    # a random-initialised yolox-nano: only the geometry is under test, not what it finds
    return [
        str(clip),
        "-o",
        str(out),
        "--frames",
        "2",
        "--base-model",
        str(model),
        "--detector",
        "yolox-nano",
        "--base-qualities",
        "0.5",
        "--enh-qps",
        "",
        "--anchors",
        "x265",
        "--anchor-qps",
        "40",
        "--preset",
        "ultrafast",
        "--no-progress",
        *extra,
    ]


def test_ground_truth_and_anchor_detect_at_the_base_layers_geometry(
    clip_768: Path,
    codec_test_model: Path,
    tmp_path: Path,
    seen: list[tuple],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vcodec.baselayer.learned import BaseCodec

    codec = BaseCodec.from_weights(codec_test_model)
    out = tmp_path / "res"
    # the model's working size (832): 768x432 is coded unscaled, padded to 768x448
    assert eval_main(_args(clip_768, codec_test_model, out)) == 0
    base_geo = _geo(codec.geometry(W, H).to_detector())
    assert base_geo[2:4] == (768, 448)
    # reference (2 frames), base layer (2), x265 (2): one geometry, the base layer's
    assert len(seen) >= 6 and set(seen) == {base_geo}
    res = json.loads((out / "results.json").read_text())
    assert res["detector_geometry"]["long_side"] == 832 and res["detector_geometry"]["padded"] == [768, 448]
    assert "base layer's working geometry" in (out / "summary.md").read_text()
    point = json.loads((out / "points" / "x265_qp40.json").read_text())
    key_832 = point["key"]
    ref_key_832 = json.loads((out / "reference.json").read_text())["key"]

    # --base-size 416: the base layer codes 416x234 (padded 448x256), and so does every detector on pixels
    seen.clear()
    capsys.readouterr()
    assert eval_main(_args(clip_768, codec_test_model, out, "--base-size", "416")) == 0
    assert "2 points, 0 already computed" in capsys.readouterr().err
    base_geo = _geo(codec.geometry(W, H, 416).to_detector())
    assert base_geo[2:4] == (448, 256) and base_geo[4] == pytest.approx(416 / 768, rel=1e-3)
    assert len(seen) >= 6 and set(seen) == {base_geo}
    base_point = json.loads((out / "points" / "vcodec-base_q0.50.json").read_text())
    assert base_point["settings"]["base_size"] == 416
    # the cache keys of the ground truth and of every point follow the base size
    assert json.loads((out / "points" / "x265_qp40.json").read_text())["key"] != key_832
    assert json.loads((out / "reference.json").read_text())["key"] != ref_key_832
    res = json.loads((out / "results.json").read_text())
    assert res["detector_geometry"]["scaled"] == [416, 234]
    assert res["provenance"]["settings"]["base_size"] == 416

    # the same settings again: everything is reused
    capsys.readouterr()
    assert eval_main(_args(clip_768, codec_test_model, out, "--base-size", "416")) == 0
    assert "2 points, 2 already computed, 0 work units" in capsys.readouterr().err


def test_anchor_size_adds_a_labelled_anchor(
    clip_768: Path, codec_test_model: Path, tmp_path: Path, seen: list[tuple]
) -> None:
    from vcodec.baselayer.learned import BaseCodec

    out = tmp_path / "res"
    args = _args(clip_768, codec_test_model, out, "--anchor-size", "416", "--anchor-qps", "36,44")
    assert eval_main(args) == 0
    codec = BaseCodec.from_weights(codec_test_model)
    at_832, at_416 = (_geo(codec.geometry(W, H, s).to_detector()) for s in (832, 416))
    # the extra detections use the same rule at 416; nothing else leaves the working geometry
    assert set(seen) == {at_832, at_416} and seen.count(at_416) == 4
    res = json.loads((out / "results.json").read_text())
    by = {p["id"]: p for p in res["points"]}
    for qp in (36, 44):
        a, b = by[f"x265_qp{qp}"], by[f"x265@416_qp{qp}"]
        assert b["system"] == "x265@416" and b["kbps_total"] == a["kbps_total"] and b["psnr_y"] == a["psnr_y"]
    assert {e["anchor"] for e in res["bd_rate"] if e["test"] == "vcodec-base"} == {"x265", "x265@416"}
    assert res["detector_geometry"]["anchor_size"] == 416
    assert "x265@416" in (out / "summary.md").read_text()


def test_eval_base_size_errors(clip_768: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        str(clip_768),
        "-o",
        str(tmp_path / "r"),
        "--detector",
        "yolox-nano",
        "--anchors",
        "x265",
        "--base-qualities",
        "",
    ]
    assert eval_main([*base, "--base-size", "0"]) == 2
    assert "base_size 0" in capsys.readouterr().err
    assert eval_main([*base, "--base-size", "1000"]) == 2
    assert "larger than the input's long side" in capsys.readouterr().err
    assert eval_main([*base, "--anchor-size", "16"]) == 2
    assert "anchor_size 16" in capsys.readouterr().err


class _Recorder(SplitDetector):
    """A stand-in detector: one box covering the whole input, and the shapes it was given."""

    name = "recorder"
    split_channels = 4

    def __init__(self) -> None:
        super().__init__(score_threshold=0.01)
        self.shapes: list[tuple[int, int]] = []
        self.pixels: list[np.ndarray] = []

    def front(self, x):  # type: ignore[no-untyped-def]
        import torch

        self.shapes.append(tuple(x.shape[-2:]))
        self.pixels.append(x[0].numpy().copy())
        return torch.zeros(1, self.split_channels, x.shape[-2] // 8, x.shape[-1] // 8)

    def back_raw(self, features):  # type: ignore[no-untyped-def]
        import torch

        h, w = features.shape[-2] * 8, features.shape[-1] * 8
        return [(torch.tensor([[0.0, 0.0, float(w), float(h)]]), torch.tensor([0.9]), torch.tensor([0]))]

    def front_modules(self):  # type: ignore[no-untyped-def]
        import torch

        return torch.nn.Identity()


def test_detect_at_scales_like_the_base_layer_and_maps_boxes_back() -> None:
    from vcodec.baselayer.geometry import BaseGeometry

    det = _Recorder()
    rgb = np.zeros((720, 1280, 3), np.uint8)
    rgb[:, :640] = 200
    frame = Frame.from_rgb(rgb, index=7)
    size = WorkingSize(832, 64)
    ((index, d),) = list(detect_at(det, [frame], size))
    g = BaseGeometry.for_size(1280, 720, 832, 64)
    assert index == 7 and det.shapes == [(g.padded_height, g.padded_width)] == [(512, 832)]
    # the picture fills the coded 832x468 area; the rest is the grey pad
    x = det.pixels[0]
    assert (x[:, 468:, :] == 114).all() and not (x[:, :468, :] == 114).all()
    # a box over the whole padded input maps back to the source, clipped to it
    assert d.boxes.tolist() == [[0.0, 0.0, 1280.0, 720.0]] and (d.image_width, d.image_height) == (1280, 720)
    # smaller than the working size: native size, padded only
    det.shapes.clear()
    list(detect_at(det, [Frame.from_rgb(np.zeros((240, 416, 3), np.uint8))], size))
    assert det.shapes == [(256, 448)]


def test_working_size_follows_the_base_model_and_base_size(codec_test_model: Path) -> None:
    w = working_size(str(codec_test_model), None)
    assert (w.long_side, w.multiple) == (832, 64) and "base model" in w.source
    assert working_size(str(codec_test_model), 416).long_side == 416
    # the feature base mode: its own max_long_side
    assert working_size("vcodec-det", 640, mode="features").long_side == 640
