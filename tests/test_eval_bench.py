"""`vcodec bench`: the JSON report's schema on a few frames of the bundled clip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vcodec.cli.bench import main as bench_main
from vcodec.eval.bench import BENCH_SCHEMA_VERSION, STAGES

REPO = Path(__file__).resolve().parents[1]
SEQUENCE = REPO / "sequences" / "synthetic_416x240_30.y4m"


def test_bench_schema(
    codec_test_model: Path, yolox_nano_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert (
        bench_main(
            [
                str(SEQUENCE),
                "--frames",
                "3",
                "--base-model",
                str(codec_test_model),
                "--detector-weights",
                str(yolox_nano_onnx),
                "--preset",
                "ultrafast",
                "--qp",
                "35",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    assert r["schema_version"] == BENCH_SCHEMA_VERSION
    assert r["frames"] == 3 and r["size"] == [416, 240] and r["fps"] == 30
    assert set(r["stages"]) == set(STAGES)
    for name, st in r["stages"].items():
        assert set(st) >= {"seconds", "frames_per_s", "ms_per_frame", "peak_rss_mib", "start_rss_mib"}, name
        assert st["seconds"] > 0 and st["peak_rss_mib"] > 0
        # three runs per stage by default; the reported time is their median
        assert len(st["runs_seconds"]) == 3, name
        assert st["seconds"] == pytest.approx(sorted(st["runs_seconds"])[1], abs=2e-6), name
        assert st["frames_per_s"] == pytest.approx(3 / st["seconds"], rel=1e-2)
        assert st["ms_per_frame"] == pytest.approx(1000 * st["seconds"] / 3, rel=1e-2)
    ratios = r["ratios"]
    assert set(ratios) == {
        "encode_vs_x265",
        "base_encode_vs_x265",
        "full_decode_vs_x265",
        "analytics_vs_x265_decode_detect",
        "stream_encode_vs_x265",
        "stream_decode_vs_x265",
    }
    assert set(r["stream_gops"]) <= {"R", "F"} and len(r["stream_gops"]) == 1  # 3 frames: one GOP
    s = {k: v["seconds"] for k, v in r["stages"].items()}
    assert ratios["full_decode_vs_x265"] == pytest.approx(s["full_decode"] / s["x265_decode"], rel=0.01)
    # the residual path's encode pays for the base picture; the base layer's own figure does not
    assert ratios["encode_vs_x265"] == pytest.approx(
        (s["base_encode_picture"] + s["enh_encode"]) / s["x265_encode"], rel=0.01)
    assert ratios["base_encode_vs_x265"] == pytest.approx(s["base_encode"] / s["x265_encode"], rel=0.01)
    assert all(math.isfinite(v) and v > 0 for v in ratios.values())
    assert r["kbps"]["base"] > 0 and r["kbps"]["enh"] > 0 and r["kbps"]["x265"] > 0
    assert r["settings"]["base_model_sha256"] == json.loads(codec_test_model.read_text())["sha256"]
    assert r["settings"]["qp"] == 35 and r["provenance"]["vcodec_version"]
    assert "frames/s" in capsys.readouterr().err


def test_bench_rejects_bad_input(tmp_path: Path) -> None:
    assert bench_main([str(tmp_path / "nope.y4m"), "--threads", "1"]) == 1
    assert bench_main([str(SEQUENCE), "--threads", "0"]) == 2
    assert bench_main([str(SEQUENCE), "--repeat", "0"]) == 2
