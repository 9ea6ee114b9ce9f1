"""`vcodec eval` end to end on the bundled clip: every system, two points each, resume, --jobs, real GT."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import SEQUENCE, YOLOX_NANO_ONNX

from vcodec.cli.eval import main as eval_main
from vcodec.eval.runner import METRIC_COLUMNS

#: wall-clock seconds: the only fields of a point that differ from run to run
TIMINGS = ("encode_s", "decode_s")
#: an enhancement unit's payload is the encoder's packet behind a version byte and an int32 dts
#: (docs/ENHANCEMENT.md), one packet per frame
ENH_PAYLOAD_HEADER = 1  # enhancement payload version 2: one byte per packet


def _untimed(point: dict) -> dict:
    return {k: v for k, v in point.items() if k not in TIMINGS}


def _detector_args() -> list[str]:
    # real YOLOX-Nano weights when the shared folder is there; else the same network at its
    # (seeded, prior-biased) initialisation, which exercises the same code with few detections
    return ["--detector", "yolox-nano",
            *(["--detector-weights", str(YOLOX_NANO_ONNX)] if YOLOX_NANO_ONNX.is_file() else [])]


def _common(model: Path, out: Path) -> list[str]:
    return [
        str(SEQUENCE),
        "-o",
        str(out),
        "--start",
        "9",
        "--frames",
        "3",
        "--base-model",
        str(model),
        *_detector_args(),
        "--preset",
        "ultrafast",
        "--no-progress",
    ]


@pytest.mark.slow
def test_eval_end_to_end_two_points_per_system(
    codec_test_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "res"
    args = [
        *_common(codec_test_model, out),
        "--base-qualities",
        "0.2,0.8",
        "--enh-qps",
        "30,40",
        "--anchor-qps",
        "27,37",
    ]
    assert eval_main(args) == 0
    for name in (
        "results.csv",
        "results.json",
        "summary.md",
        "provenance.json",
        "groundtruth.json",
        "rd_map50.png",
        "rd_psnr.png",
        "rd_msssim.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "rd_psnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    ids = {p["id"] for p in res["points"]}
    expected = {
        "reference",
        "vcodec-base_q0.20",
        "vcodec-base_q0.80",
        "vcodec-full_q0.20_qp30",
        "vcodec-full_q0.20_qp40",
        "vcodec-full_q0.80_qp30",
        "vcodec-full_q0.80_qp40",
        "x265_qp27",
        "x265_qp37",
        "x264_qp27",
        "x264_qp37",
        "simulcast_q0.20_qp27",
        "simulcast_q0.20_qp37",
        "simulcast_q0.80_qp27",
        "simulcast_q0.80_qp37",
    }
    assert ids == expected
    by = {p["id"]: p for p in res["points"]}
    # rates: the base layer is part of the full stream; a finer base costs more bits
    assert 0 < by["vcodec-base_q0.20"]["kbps_base"] < by["vcodec-base_q0.80"]["kbps_base"]
    full = by["vcodec-full_q0.20_qp30"]
    # (approx: kbit/s of the summed bytes against the sum of two kbit/s, equal up to float rounding)
    assert full["kbps_total"] == pytest.approx(full["kbps_base"] + full["kbps_enh"])
    # both points code the same deterministic base layer
    assert full["kbps_base"] == by["vcodec-base_q0.20"]["kbps_base"]
    assert by["x265_qp27"]["kbps_total"] > by["x265_qp37"]["kbps_total"] > 0
    sim = by["simulcast_q0.20_qp27"]
    assert sim["kbps_total"] == by["vcodec-base_q0.20"]["kbps_base"] + by["x265_qp27"]["kbps_total"]
    assert sim["psnr_y"] == by["x265_qp27"]["psnr_y"]
    # quality: a lower QP is better; the enhancement lifts the untrained base picture a lot
    assert by["x265_qp27"]["psnr_y"] > by["x265_qp37"]["psnr_y"] > 25
    assert full["psnr_y"] > by["vcodec-full_q0.20_qp40"]["psnr_y"] > by["vcodec-base_q0.20"]["psnr_y"]
    assert 0 < full["ms_ssim"] <= 1
    # pseudo ground truth is flagged everywhere
    assert res["pseudo_ground_truth"] is True and "PSEUDO" in res["ground_truth"]
    summary = (out / "summary.md").read_text()
    assert "PSEUDO GROUND TRUTH" in summary
    # the RD plots are linked from the summary (relative: they sit beside it)
    for plot in ("rd_map50.png", "rd_psnr.png", "rd_msssim.png"):
        assert f"]({plot})" in summary and (out / plot).is_file()
    gt = json.loads((out / "groundtruth.json").read_text())
    if any(f["boxes"] for f in gt["frames"].values()):
        # the reference IS the pseudo ground truth (plus lower-scored extras): perfect by construction
        assert by["reference"]["map50"] == pytest.approx(1.0)
        assert 0 <= by["x265_qp27"]["map50"] <= 1
    # BD-rate: two points allow PCHIP but not the cubic fit, which says why
    bd = [
        e
        for e in res["bd_rate"]
        if e["test"] == "vcodec-full q=0.20" and e["anchor"] == "x265" and e["metric"] == "psnr_y"
    ]
    assert {e["method"] for e in bd} == {"pchip", "cubic"}
    cubic = next(e for e in bd if e["method"] == "cubic")
    assert cubic["bd_rate"] is None and "at least 4" in cubic["reason"]
    # per-point files and CSV schema
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == METRIC_COLUMNS and len(rows) == len(expected)
    point = json.loads((out / "points" / "x264_qp27.json").read_text())
    assert point["settings"]["encoder_config"]["codec"] == "libx264" and point["key"]
    assert (out / "points" / "x264_qp27.csv").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["vcodec_version"] and prov["libavcodec"] and "libx265" in prov["encoders"]
    base_point = json.loads((out / "points" / "vcodec-base_q0.20.json").read_text())
    model_sha = json.loads(codec_test_model.read_text())["sha256"]
    assert base_point["settings"]["base_model"]["sha256"] == model_sha

    # rerun: nothing is recomputed, the stored points are untouched
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    capsys.readouterr()
    assert eval_main(args) == 0
    err = capsys.readouterr().err
    assert "10 already computed, 0 work units" in err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")} == mtimes

    # the same clip copied elsewhere with another mtime (a data folder provisioned afresh): the
    # points are keyed by the file's content, so nothing is recomputed
    import os
    import shutil

    copy = tmp_path / "copied" / SEQUENCE.name
    copy.parent.mkdir()
    shutil.copy(SEQUENCE, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    assert eval_main([str(copy), *args[1:]]) == 0
    assert "10 already computed, 0 work units" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")} == mtimes

    # anchors do not depend on the base model: a run without it (as after retraining) reuses them
    capsys.readouterr()
    i = args.index("--base-qualities")
    assert eval_main([*args[:i], *args[i + 2:], "--base-qualities", ""]) == 0
    assert "4 points, 4 already computed, 0 work units" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")} == mtimes

    # the base layer's coding tools do (its LAYER_CONFIG record): payload version 2 recomputes
    # every vcodec point and keeps the anchors
    from vcodec.baselayer.learned import CodingTools

    monkeypatch.setattr(CodingTools, "for_effort", classmethod(lambda cls, effort: cls.version2()))
    capsys.readouterr()
    assert eval_main(args) == 0
    assert "10 points, 4 already computed" in capsys.readouterr().err
    anchors = {n: t for n, t in mtimes.items() if not n.startswith("vcodec-")}
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")
            if not p.name.startswith("vcodec-")} == anchors

    # real ground truth (SFU-HW-Objects) re-scores the stored detections without re-encoding
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in range(9, 12):
        (gt_dir / f"synthetic_416x240_30_seq_{i:03d}.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    capsys.readouterr()
    assert eval_main([*args, "--gt", str(gt_dir)]) == 0
    assert "10 already computed" in capsys.readouterr().err
    res2 = json.loads((out / "results.json").read_text())
    assert res2["pseudo_ground_truth"] is False and "sfu-objects" in res2["ground_truth"]
    assert "PSEUDO" not in (out / "summary.md").read_text()


@pytest.mark.slow
def test_eval_parallel_jobs_match_serial(codec_test_model: Path, tmp_path: Path) -> None:
    """--jobs only spreads deterministic work units over processes: every number is identical."""
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    # one learned-base unit (base + full points) and two anchor units: three units for two workers
    args = ["--base-qualities", "0.5", "--enh-qps", "40", "--anchor-qps", "30,38", "--anchors", "x265"]
    assert eval_main([*_common(codec_test_model, serial), *args]) == 0
    assert eval_main([*_common(codec_test_model, parallel), *args, "--jobs", "2"]) == 0
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (serial, parallel))
    a = {p["id"]: _untimed(p) for p in ra["points"]}
    b = {p["id"]: _untimed(p) for p in rb["points"]}
    assert set(a) == {"reference", "vcodec-base_q0.50", "vcodec-full_q0.50_qp40", "x265_qp30", "x265_qp38",
                      "simulcast_q0.50_qp30", "simulcast_q0.50_qp38"}
    assert a == b
    assert ra["bd_rate"] == rb["bd_rate"] and ra["ground_truth"] == rb["ground_truth"]
    # the stored points too: bytes, per-frame quality and detections, settings, cache keys
    for f in sorted((serial / "points").glob("*.json")):
        assert _untimed(json.loads(f.read_text())) == _untimed(
            json.loads((parallel / "points" / f.name).read_text())), f.name


def test_eval_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main([str(SEQUENCE), "-o", str(tmp_path / "r"), "--base-qualities", "1.5"]) == 2
    assert "base quality 1.5" in capsys.readouterr().err
    assert (
        eval_main([str(SEQUENCE), "-o", str(tmp_path / "r"), "--anchors", "vp9", "--base-qualities", ""]) == 2
    )
    assert "unknown anchor" in capsys.readouterr().err
    assert eval_main([str(SEQUENCE), "-o", str(tmp_path / "r"), "--min-class-objects", "0"]) == 2
    err = capsys.readouterr().err
    assert "min_class_objects 0 is invalid" in err and len(err.strip().splitlines()) == 1
    assert (
        eval_main([str(tmp_path / "missing.y4m"), "-o", str(tmp_path / "r"), "--detector", "yolox-nano"]) == 1
    )


def test_eval_base_layer_only(codec_test_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "base_only"
    args = [*_common(codec_test_model, out), "--base-qualities", "0.5", "--enh-qps", "", "--anchors", ""]
    assert eval_main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert [p["id"] for p in res["points"]] == ["reference", "vcodec-base_q0.50"]
    assert res["points"][1]["kbps_base"] > 0 and res["bd_rate"] == []
    # a model whose weights carry no training record: its overlap with the evaluated frames is
    # reported as unknown, never as zero (no adapted back end ships for this test model)
    [overlap] = res["training_overlap"]
    assert (overlap["role"], overlap["model"], overlap["trained"]) == ("base model", "base-e2e-test-v1", None)
    assert overlap["evaluated"] == res["frames"] and overlap["first_frame"] == 9  # --start 9
    summary = (out / "summary.md").read_text()
    assert "**evaluated frames trained on**: base model base-e2e-test-v1: unknown" in summary
    assert f"{res['frames']} frames from frame 9," in summary
    # 2 objects in 3 frames: no class reaches 5 objects, so every class is scored, and it says so
    assert "mAP over every class of the ground truth" in res["ground_truth"]


@pytest.mark.slow
def test_eval_inter_layer_off_is_simulcast_in_one_stream(codec_test_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "off"
    args = [*_common(codec_test_model, out), "--base-qualities", "0.5", "--enh-qps", "30",
            "--anchors", "x265", "--anchor-qps", "30", "--inter-layer", "off", "--no-full-detect"]
    assert eval_main(args) == 0
    by = {p["id"]: p for p in json.loads((out / "results.json").read_text())["points"]}
    full, x265 = by["vcodec-full_q0.50_qp30"], by["x265_qp30"]
    settings = json.loads((out / "points" / "vcodec-full_q0.50_qp30.json").read_text())["settings"]
    assert settings["inter_layer"] == "off" and settings["enhancement_config"]["anchor"] is True
    # layer 1 then holds the same single-layer x265 coding as the anchor at the same QP: the same
    # pictures, and the same packets plus each enhancement unit's payload header
    full_point, x265_point = (json.loads((out / "points" / f"{pid}.json").read_text())
                              for pid in ("vcodec-full_q0.50_qp30", "x265_qp30"))
    assert full_point["bytes"]["enh"] == x265_point["bytes"]["total"] + ENH_PAYLOAD_HEADER * 3
    assert full_point["quality_per_frame"] == x265_point["quality_per_frame"]
    for metric in ("psnr_y", "psnr_yuv", "ms_ssim"):
        assert full[metric] == x265[metric], metric


def test_a_retrained_back_end_recomputes_the_base_points(codec_test_model: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapted back end decides the base points' detections: other weights, other points
    (the stored ones would otherwise keep the old back end's detections)."""
    from vcodec.baselayer.learned.plugin import LearnedBase
    from vcodec.baselayer.protocol import TrainedPart

    out = tmp_path / "backend"
    args = [*_common(codec_test_model, out), "--base-qualities", "0.5", "--enh-qps", "", "--anchors", ""]
    assert eval_main(args) == 0
    capsys.readouterr()
    assert eval_main(args) == 0
    assert "1 points, 1 already computed" in capsys.readouterr().err
    plain = LearnedBase.trained_parts
    for sha in ("ab" * 32, "cd" * 32):
        monkeypatch.setattr(LearnedBase, "trained_parts", lambda self, det, sha=sha: [
            *plain(self, det), TrainedPart("adapted back end", "backend-x", {}, sha)])
        assert eval_main(args) == 0
        assert "1 points, 0 already computed" in capsys.readouterr().err
    assert eval_main(args) == 0  # the same back end again: nothing to recompute
    assert "1 points, 1 already computed" in capsys.readouterr().err


def test_eval_codes_the_base_layer_with_the_encoders_tools(codec_test_model: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """--base-tune and friends reach the encoder, are recorded, and a change of tools recomputes
    the vcodec points while the anchors are kept."""
    out = tmp_path / "tools"
    common = _common(codec_test_model, out)
    at = common.index("--base-model")
    del common[at:at + 2]  # the shipped model: its P-frames respond to the tools on these frames
    args = [*common, "--base-qualities", "0.5", "--enh-qps", "", "--anchors", "x265", "--anchor-qps", "40",
            "--no-full-detect"]
    assert eval_main(args) == 0
    default = json.loads((out / "points" / "vcodec-base_q0.50.json").read_text())
    assert default["settings"]["base_tools"] == {"effort": "fast", "tune": "default", "p_offset": None,
                                                 "deadzone": None}
    assert "base layer coded with" not in (out / "summary.md").read_text()
    capsys.readouterr()
    # P-frames 0.6 above the intra frame (clamped to 1) cost more: the option reached the encoder
    assert eval_main([*args, "--base-tune", "fixed-camera", "--base-p-offset", "0.6"]) == 0
    assert "2 points, 1 already computed" in capsys.readouterr().err  # the x265 point is kept
    tuned = json.loads((out / "points" / "vcodec-base_q0.50.json").read_text())
    assert tuned["settings"]["base_tools"] == {"effort": "fast", "tune": "fixed-camera", "p_offset": 0.6,
                                               "deadzone": None}
    assert tuned["bytes"]["base"] > default["bytes"]["base"]
    summary = (out / "summary.md").read_text()
    assert "- base layer coded with --base-tune fixed-camera --base-p-offset 0.6" in summary
    prov = json.loads((out / "provenance.json").read_text())
    assert (prov["settings"]["base_tune"], prov["settings"]["base_p_offset"]) == ("fixed-camera", 0.6)


def test_eval_refuses_bad_base_tools_before_writing(codec_test_model: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    args = [*_common(codec_test_model, out), "--base-qualities", "0.5", "--anchors", ""]
    assert eval_main([*args, "--base-deadzone", "9"]) == 2
    err = capsys.readouterr().err
    assert "dead zone 9.0 is invalid" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_eval_bootstrap_gives_every_scored_point_an_interval(codec_test_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "boot"
    args = [*_common(codec_test_model, out), "--base-qualities", "0.5", "--enh-qps", "40",
            "--anchors", "x265", "--anchor-qps", "40", "--bootstrap", "40", "--no-full-detect"]
    assert eval_main(args) == 0
    res = json.loads((out / "results.json").read_text())
    by = {p["id"]: p for p in res["points"]}
    for pid in ("reference", "vcodec-base_q0.50", "x265_qp40", "simulcast_q0.50_qp40"):
        p = by[pid]
        assert p["map50_low"] <= p["map50_high"], pid
    # pseudo ground truth is the reference itself (up to the rounding of COCOeval's class mean)
    assert (by["reference"]["map50_low"], by["reference"]["map50_high"]) == pytest.approx((1.0, 1.0))
    # simulcast's detections are the base layer's: so is its interval
    assert by["simulcast_q0.50_qp40"]["map50_low"] == by["vcodec-base_q0.50"]["map50_low"]
    assert "map50_low" not in by["vcodec-full_q0.50_qp40"]  # no detections on its pixels were asked for
    assert "[95 % interval]" in (out / "summary.md").read_text()
