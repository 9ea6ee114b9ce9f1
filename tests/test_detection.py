"""Split-detector contract, geometry, NMS, weights errors, formats and the detect CLI (synthetic inputs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_coco_detections

from vcodec.detection import DETECTORS, Detections, Geometry, get_detector
from vcodec.detection.base import COCO80, letterbox_geometry, pad_geometry, postprocess_dense
from vcodec.detection.formats import coco_results, format_for_path, write_mot, write_sfu
from vcodec.detection.vcodec_det import SHIPPED_RECORD, SHIPPED_WEIGHTS, VcodecDet
from vcodec.detection.weights import sha256_of
from vcodec.detection.yolox import YOLOX
from vcodec.errors import ConfigError, InputError, RegistryError, WeightsError
from vcodec.io.frame import Frame
from vcodec.registry import Registry

# the detector tests run with one torch thread (conftest ``one_torch_thread``)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_vcodec_det(**kw: float) -> VcodecDet:
    torch.manual_seed(0)
    det = VcodecDet(**kw)
    with torch.no_grad():  # non-trivial outputs: the zero-initialised predictors would give none
        for p in det.preds:
            p.weight.normal_(0, 0.1)
            p.bias.normal_(0, 1.0)
    return det.fuse().eval()


def _picture(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- geometry ----------------------------------------------------------------


@pytest.mark.parametrize("w,h,size", [(320, 180, 416), (180, 320, 416), (416, 240, (256, 448)), (97, 61, 64)])
def test_letterbox_boxes_land_on_the_right_pixels(w: int, h: int, size: int | tuple[int, int]) -> None:
    # a white rectangle on black; find it in the prepared tensor and map it back
    x0, y0, x1, y1 = w // 4, h // 3, w // 2, (2 * h) // 3
    img = np.zeros((h, w, 3), np.uint8)
    img[y0:y1, x0:x1] = 255
    det = _random_vcodec_det()
    if isinstance(size, int) and size % 32:
        with pytest.raises(ConfigError):
            det.prepare(img, "letterbox", size)
        size = 128
    x, g = det.prepare(img, "letterbox", size)
    th, tw = (size, size) if isinstance(size, int) else size
    assert tuple(x.shape) == (1, 3, th, tw) and g.mode == "letterbox"
    bright = (x[0, 0] > 200).numpy()
    ys, xs = np.nonzero(bright)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = g.to_original(found)[0]
    tol = 1.0 / g.scale + 1.0
    assert np.allclose(back, [x0, y0, x1, y1], atol=tol), (back, (x0, y0, x1, y1), g)
    # padding is grey 114 and only right/bottom
    rw, rh = g.resized_size
    assert g.pad_left == 0 and g.pad_top == 0
    if rw < tw:
        assert torch.all(x[0, :, :, rw:] == 114)
    if rh < th:
        assert torch.all(x[0, :, rh:, :] == 114)
    # and the round trip of arbitrary boxes is exact
    boxes = np.array([[1.5, 2.0, 30.0, 40.0], [0, 0, w, h]], np.float32)
    assert np.allclose(g.to_original(g.to_input(boxes)), boxes, atol=1e-3)


def test_pad_mode_keeps_pixels_and_aligns_to_multiple() -> None:
    img = _picture(416, 240)
    det = _random_vcodec_det()
    x, g = det.prepare(img, "pad", multiple=64)
    assert tuple(x.shape) == (1, 3, 256, 448)
    assert g.scale == 1.0 and (g.pad_right, g.pad_bottom) == (32, 16)
    # BGR order kept, values 0..255, untouched inside the picture
    assert torch.equal(x[0, :, :240, :416].permute(1, 2, 0).to(torch.uint8), torch.from_numpy(img))
    assert torch.all(x[0, :, 240:] == 114) and torch.all(x[0, :, :, 416:] == 114)
    assert det.front(x).shape == (1, 64, 32, 56)
    assert pad_geometry(416, 240, 64) == g
    lb = letterbox_geometry(1920, 1080, 416)
    assert lb.scale == pytest.approx(416 / 1920) and lb.resized_size == (416, 234) and lb.pad_bottom == 182
    with pytest.raises(ConfigError):
        det.prepare(img, "pad", multiple=48)
    with pytest.raises(ConfigError):
        det.prepare(img, "stretch")


def test_prepare_accepts_frames_and_rejects_bad_arrays() -> None:
    rgb = _picture(64, 48)
    frame = Frame.from_rgb(rgb)
    det = _random_vcodec_det()
    x, g = det.prepare(frame, "pad")
    assert tuple(x.shape) == (1, 3, 64, 64) and (g.orig_width, g.orig_height) == (64, 48)
    assert torch.equal(x[0, :, :48, :64].permute(1, 2, 0).to(torch.uint8), torch.from_numpy(frame.to_bgr()))
    with pytest.raises(InputError):
        det.prepare(rgb.astype(np.float32))
    with pytest.raises(InputError):
        det.prepare(rgb[..., 0])


# -- split contract --------------------------------------------------------


@pytest.mark.parametrize("h,w", [(64, 96), (128, 32), (256, 448)])
def test_front_back_any_multiple_of_32(h: int, w: int) -> None:
    det = _random_vcodec_det(score_threshold=0.0, max_detections=50)
    x = torch.from_numpy(_picture(w, h, 1).transpose(2, 0, 1).copy()).float()[None]
    f = det.front(x)
    assert f.shape == (1, det.split_channels, h // 8, w // 8)
    [d] = det.back(f)
    assert isinstance(d, Detections) and 0 < len(d) <= 50
    assert np.all(d.boxes[:, 2] <= w) and np.all(d.boxes[:, 3] <= h) and np.all(d.boxes >= 0)
    assert set(d.class_ids.tolist()) <= set(det.active_classes)
    assert np.all(np.diff(d.scores) <= 0)


def test_back_of_front_equals_detect() -> None:
    det = _random_vcodec_det(score_threshold=0.05)
    img = _picture(200, 120, 3)
    d1 = det.detect(img, "letterbox", 160)
    x, g = det.prepare(img, "letterbox", 160)
    with torch.no_grad():
        [d2] = det.back(det.front(x), g)
    assert len(d1) > 0
    np.testing.assert_array_equal(d1.boxes, d2.boxes)
    np.testing.assert_array_equal(d1.scores, d2.scores)
    np.testing.assert_array_equal(d1.class_ids, d2.class_ids)
    assert (d1.image_width, d1.image_height) == (200, 120)


def test_front_and_back_check_shapes() -> None:
    det = _random_vcodec_det()
    with pytest.raises(InputError, match="multiple of 32"):
        det.front(torch.zeros(1, 3, 40, 64))
    with pytest.raises(InputError, match="64"):
        det.back(torch.zeros(1, 32, 8, 8))
    with pytest.raises(InputError, match="geometries"):
        det.back(torch.zeros(2, 64, 8, 8), [Geometry.identity(64, 64)])


# -- NMS and thresholds ------------------------------------------------------


def _dense(rows: list[list[float]], num_classes: int = 3) -> torch.Tensor:
    """rows: cx, cy, w, h, obj, class index, class prob."""
    t = torch.zeros(1, len(rows), 5 + num_classes)
    for i, (cx, cy, w, h, obj, c, p) in enumerate(rows):
        t[0, i, :5] = torch.tensor([cx, cy, w, h, obj])
        t[0, i, 5 + int(c)] = p
    return t


def test_nms_and_score_thresholds() -> None:
    rows = [
        [50, 50, 40, 40, 0.9, 0, 0.9],   # score .81
        [52, 50, 40, 40, 0.8, 0, 0.9],   # score .72, IoU ~.9 with the first, same class
        [51, 50, 40, 40, 0.9, 1, 0.8],   # score .72, other class, overlapping
        [150, 150, 20, 20, 0.5, 2, 0.5],  # score .25
    ]
    ids = [0, 2, 7]
    [(b, s, c)] = postprocess_dense(_dense(rows), ids, 0.3, 0.45, 100)
    assert c.tolist() == [0, 2] and np.allclose(s.numpy(), [0.81, 0.72])
    assert np.allclose(b[0].numpy(), [30, 30, 70, 70])
    # a loose NMS keeps the near-duplicate; a low score threshold keeps the small one
    [(b, s, c)] = postprocess_dense(_dense(rows), ids, 0.2, 0.95, 100)
    assert sorted(c.tolist()) == [0, 0, 2, 7]
    # class-agnostic NMS removes the other-class overlap too
    [(b, s, c)] = postprocess_dense(_dense(rows), ids, 0.3, 0.45, 100, class_agnostic=True)
    assert c.tolist() == [0]
    # max_detections caps
    [(b, s, c)] = postprocess_dense(_dense(rows), ids, 0.0, 0.95, 2)
    assert len(s) == 2 and s[0] >= s[1]


def test_thresholds_validated_and_applied() -> None:
    with pytest.raises(ConfigError):
        VcodecDet(score_threshold=1.5)
    with pytest.raises(ConfigError):
        VcodecDet(nms_threshold=-0.1)
    det = _random_vcodec_det(score_threshold=0.0)
    f = det.front(torch.zeros(1, 3, 64, 64) + 100)
    n_all = len(det.back(f)[0])
    det.score_threshold = 0.5
    d = det.back(f)[0]
    assert len(d) < n_all and np.all(d.scores >= 0.5)


def test_detections_type() -> None:
    d = Detections(np.zeros((2, 4)), [0.5, 0.4], [0, 2], 10, 10)
    assert d.class_names == ["person", "car"] and len(d.filter(0.45)) == 1
    assert len(d.filter(0.0, classes=[2])) == 1
    with pytest.raises(InputError):
        Detections(np.zeros((2, 4)), [0.5], [0, 2])


# -- registry and weights errors -------------------------------------------


def test_registry_names_and_duplicates() -> None:
    for name in (
        "vcodec-det",
        "yolox-nano",
        "yolox-tiny",
        "fasterrcnn-r50-fpn",
        "retinanet-r50-fpn",
        "fcos-r50-fpn",
    ):
        assert name in DETECTORS
    with pytest.raises(RegistryError):
        DETECTORS.register("yolox-nano", lambda *a, **k: None)
    with pytest.raises(RegistryError, match="known"):
        get_detector("yolo-v99")
    r: Registry[int] = Registry("thing")
    r.register("a", 1)
    with pytest.raises(RegistryError):
        r.register("a", 2)


def test_weights_errors_are_typed_and_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth"):
        get_detector("yolox-nano", missing)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        get_detector("yolox-nano", junk)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="notes.txt"):
        get_detector("yolox-nano", text)
    # another architecture: vcodec-det weights into YOLOX-Nano
    other = tmp_path / "vdet.pt"
    torch.save(VcodecDet().state_dict(), other)
    with pytest.raises(WeightsError, match="vdet.pt.*(another architecture|missing)"):
        get_detector("yolox-nano", other)
    # wrong variant: nano weights into tiny
    nano = tmp_path / "nano.pth"
    torch.save({"model": YOLOX("nano").state_dict()}, nano)
    with pytest.raises(WeightsError, match="nano.pth"):
        get_detector("yolox-tiny", nano)
    # missing keys
    state = VcodecDet().state_dict()
    dropped = next(k for k in state if k.startswith("preds"))
    del state[dropped]
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(WeightsError, match=rf"partial.pt.*missing.*{dropped}"):
        get_detector("vcodec-det", partial)
    # a checkpoint that is not a state dict
    odd = tmp_path / "odd.pt"
    torch.save({"epoch": 3}, odd)
    with pytest.raises(WeightsError, match="odd.pt"):
        get_detector("vcodec-det", odd)


def test_pth_round_trip_and_load_after_fuse(tmp_path: Path) -> None:
    torch.manual_seed(1)
    det = VcodecDet()
    p = tmp_path / "w.pt"
    torch.save({"model": det.state_dict()}, p)
    loaded = get_detector("vcodec-det", p, score_threshold=0.0)
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        assert torch.allclose(
            det.eval().raw_outputs(det.front(x)), loaded.raw_outputs(loaded.front(x)), atol=1e-5
        )
    with pytest.raises(WeightsError, match="before fuse"):
        loaded.load(p)


# -- shipped weights -----------------------------------------------------------


@pytest.fixture
def shipped() -> dict:
    if not SHIPPED_WEIGHTS.is_file() or not SHIPPED_RECORD.is_file():
        pytest.fail(f"shipped vcodec-det weights missing: {SHIPPED_WEIGHTS}")
    return json.loads(SHIPPED_RECORD.read_text())


def test_shipped_weights_match_their_record(shipped: dict) -> None:
    assert sha256_of(SHIPPED_WEIGHTS) == shipped["sha256"]
    assert SHIPPED_WEIGHTS.stat().st_size == shipped["size_bytes"] < 5 * 1024 * 1024
    assert shipped["classes"] == [0, 1, 2, 3, 5, 7]
    assert [COCO80[c] for c in shipped["classes"]] == ["person", "bicycle", "car", "motorcycle", "bus",
                                                       "truck"]
    for key in ("data", "steps", "epochs", "final_losses"):
        assert shipped["training"][key]
    assert 0.0 < shipped["evaluation"]["holdout_map50"] <= 1.0
    det = get_detector("vcodec-det")
    assert det.num_parameters()["total"] == shipped["parameters"]["total"]


def test_shipped_weights_tampering_is_detected(
    shipped: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vcodec.detection.vcodec_det as vd

    bad = tmp_path / "vcodec-det.pt"
    shutil.copy(SHIPPED_WEIGHTS, bad)
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(vd, "SHIPPED_WEIGHTS", bad)
    with pytest.raises(WeightsError, match="sha256"):
        vd.load_shipped()


# -- output formats ------------------------------------------------------------


def _items() -> list[tuple[int, Detections]]:
    d0 = Detections(np.array([[10, 20, 50, 80], [0, 0, 160, 90]]), [0.9, 0.5], [0, 7], 160, 90)
    return [(0, d0), (1, Detections(image_width=160, image_height=90))]


def test_coco_results_use_category_ids() -> None:
    res = coco_results(_items())
    assert res[0] == {"image_id": 0, "category_id": 1, "bbox": [10.0, 20.0, 40.0, 60.0], "score": 0.9}
    assert res[1]["category_id"] == 8  # truck: COCO80 id 7, category id 8


def test_mot_and_sfu_writers(tmp_path: Path) -> None:
    write_mot(tmp_path / "d.txt", _items())
    lines = (tmp_path / "d.txt").read_text().splitlines()
    assert lines[0] == "1,-1,10.0,20.0,40.0,60.0,0.90000,-1,-1,-1" and len(lines) == 2
    files = write_sfu(tmp_path / "sfu", _items(), "Clip_160x90_30")
    assert [f.name for f in files] == ["Clip_160x90_30_seq_000.txt", "Clip_160x90_30_seq_001.txt"]
    rows = [r.split() for r in files[0].read_text().splitlines()]
    assert rows[0][0] == "0" and np.allclose(
        [float(v) for v in rows[0][1:]], [30 / 160, 50 / 90, 40 / 160, 60 / 90], atol=1e-6
    )
    assert rows[1][0] == "7" and np.allclose([float(v) for v in rows[1][1:]], [0.5, 0.5, 1.0, 1.0])
    assert files[1].read_text() == ""
    assert (
        format_for_path("a.json") == "coco"
        and format_for_path("a.txt") == "mot"
        and format_for_path("dir") == "sfu"
    )
    with pytest.raises(ConfigError):
        format_for_path("a.xml")


# -- CLI ------------------------------------------------------------------------


def _raw_clip(tmp_path: Path, n: int = 2) -> Path:
    p = tmp_path / "synthetic_96x64.yuv"
    rng = np.random.default_rng(0)
    with open(p, "wb") as f:
        for i in range(n):
            f.write(Frame.from_rgb(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), index=i).to_bytes())
    return p


def test_cli_detect_writes_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.cli.detect import main

    clip = _raw_clip(tmp_path)
    out = tmp_path / "d.json"
    assert main([str(clip), "-o", str(out), "--score-threshold", "0.0", "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    # the default detector is YOLOX-Nano (shipped): any of the 80 COCO categories, from frames 0 and 1
    assert {r["image_id"] for r in res} <= {0, 1} and res
    assert_coco_detections(res, 2, 96, 64)
    assert "yolox-nano" in capsys.readouterr().err
    assert main([str(clip), "-o", str(tmp_path / "sfu"), "--format", "sfu", "--frames", "1"]) == 0
    assert [p.name for p in (tmp_path / "sfu").iterdir()] == ["synthetic_96x64_seq_000.txt"]
    assert main([str(clip), "-o", str(tmp_path / "d.txt")]) == 0
    assert "2 frames" in capsys.readouterr().err


def test_cli_detect_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vcodec.cli.detect import main

    clip = _raw_clip(tmp_path, 1)
    # yolox-tiny's weights do not ship (yolox-nano's and vcodec-det's do)
    assert main([str(clip), "--detector", "yolox-tiny"]) == 2
    assert "--weights" in capsys.readouterr().err
    assert main([str(clip), "--detector", "yolox-nano", "--weights", str(tmp_path / "x.onnx")]) == 1
    assert "x.onnx" in capsys.readouterr().err
    assert main([str(clip), "-o", str(tmp_path / "d.xml")]) == 2


# -- evaluation helpers ----------------------------------------------------------


def test_map_against_reference() -> None:
    from vcodec.detection.evaluate import map_against

    ref = [Detections(np.array([[10, 10, 50, 60], [70, 20, 90, 80]]), [0.9, 0.8], [0, 2], 100, 100)]
    same = map_against(ref, ref, [0, 2])
    assert same["map50"] == pytest.approx(1.0) and same["num_ref"] == 2
    shifted = [Detections(ref[0].boxes + 30, ref[0].scores, ref[0].class_ids, 100, 100)]
    assert map_against(ref, shifted, [0, 2])["map50"] < 0.5
    wrong_class = [Detections(ref[0].boxes, ref[0].scores, [2, 0], 100, 100)]
    assert map_against(ref, wrong_class, [0, 2])["map50"] == pytest.approx(0.0)
    # low-score reference boxes are not objects
    assert np.isnan(map_against([ref[0].filter(0.95)], ref)["map50"])


def test_detect_frames_auto_mode_and_holdout_split() -> None:
    from vcodec.detection import detect_frames
    from vcodec.detection.clips import split_holdout

    det = _random_vcodec_det(score_threshold=0.0, max_detections=5)
    small, big = _picture(96, 64), _picture(1280, 720)
    out = list(detect_frames(det, [small, big, Frame.from_rgb(_picture(64, 32), index=7)]))
    assert [i for i, _ in out] == [0, 1, 7]
    assert (out[1][1].image_width, out[1][1].image_height) == (1280, 720)
    assert np.all(out[1][1].boxes[:, 2] <= 1280) and out[1][1].boxes.max() > 200  # mapped back from 416 wide
    with pytest.raises(ConfigError):
        list(detect_frames(det, [small], mode="zoom"))
    train, hold = split_holdout(10)
    assert list(hold) == [8, 9] and list(train) == list(range(8))


def test_score_power_calibration_keeps_ranking() -> None:
    det = _random_vcodec_det(score_threshold=0.0, max_detections=5000)
    f = det.front(torch.from_numpy(_picture(96, 64, 5).transpose(2, 0, 1).copy()).float()[None])
    [raw] = det.back(f)
    det.score_power = 0.5
    [cal] = det.back(f)
    np.testing.assert_array_equal(raw.boxes, cal.boxes)
    np.testing.assert_allclose(cal.scores, np.sqrt(raw.scores), rtol=1e-5)
    # the threshold applies to the reported (calibrated) score
    det.score_threshold = float(np.median(cal.scores))
    [kept] = det.back(f)
    assert len(kept) < len(cal) and np.all(kept.scores >= det.score_threshold - 1e-6)
    with pytest.raises(ConfigError):
        VcodecDet(score_power=0.0)
