"""Typed eval records (EvalPoint, BDEntry, EvalResults) keep results.json's schema; the files are atomic."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from conftest import REPO, SEQUENCE, YOLOX_NANO_ONNX

from vcodec.errors import InputError, OutputError
from vcodec.eval.points import METRIC_COLUMNS, BDEntry, EvalPoint, EvalResults

STORED = sorted((REPO / "docs" / "results").glob("*/results.json"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _leftovers(folder: Path) -> list[str]:
    """Temporary files of the atomic writer (hidden ``.NAME.XXXX.part``) or of the old one (``.partial``)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".partial"))


@pytest.fixture(scope="module")
def tiny_run(codec_test_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalResults, Path]:
    """A real (tiny) evaluation with every kind of row: reference, base, full, x265, simulcast."""
    from vcodec.eval.runner import EvalConfig, run_eval

    out = tmp_path_factory.mktemp("tiny_eval")
    cfg = EvalConfig(
        input=str(SEQUENCE),
        output=str(out),
        start=9,
        frames=3,
        detector="yolox-nano",
        detector_weights=str(YOLOX_NANO_ONNX) if YOLOX_NANO_ONNX.is_file() else None,
        base_model=str(codec_test_model),
        base_qualities=[0.5],
        enh_qps=[40],
        anchor_qps=[30, 38],
        anchors=["x265"],
        preset="ultrafast",
        progress=False,
    )
    return run_eval(cfg, log=lambda _: None), out


def test_eval_results_round_trip_a_real_run(tiny_run: tuple[EvalResults, Path]) -> None:
    res, out = tiny_run
    stored = json.loads((out / "results.json").read_text())
    # what run_eval returns is what results.json holds, and reading it back gives the same objects
    assert res.to_json() == stored
    assert EvalResults.from_json(stored) == res
    assert EvalResults.from_json(stored).to_json() == stored
    assert {p.system for p in res.points} == {"reference", "vcodec-base", "vcodec-full", "x265", "simulcast"}
    for p in res.points:
        assert EvalPoint.from_json(p.to_json()) == p
    for e in res.bd_rate:
        assert BDEntry.from_json(e.to_json()) == e
    by = {p["id"]: p for p in stored["points"]}
    # the row shapes results have always had: a derived simulcast row has no timings or stream of its
    # own; a full-decode row scores only its full pixels; without --bootstrap no row has an interval
    interval = {"map50_low", "map50_high"}
    assert set(by["simulcast_q0.50_qp30"]) == set(METRIC_COLUMNS) - {"kbps_stream", "encode_s", "decode_s",
                                                                      *interval}
    assert set(by["vcodec-full_q0.50_qp40"]) == set(METRIC_COLUMNS) - {"map50", "map", "mota", "idf1",
                                                                       *interval}
    assert set(by["x265_qp30"]) == set(METRIC_COLUMNS) - {"map50_full", *interval}
    assert by["reference"]["kbps_total"] is None and "kbps_total" in by["reference"]
    # results.csv is the rows' csv_row(), every column in order
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [list(r) for r in rows] == [METRIC_COLUMNS] * len(res.points)
    assert rows == [{k: str(v) for k, v in p.csv_row().items()} for p in res.points]


def test_eval_outputs_are_written_atomically(tiny_run: tuple[EvalResults, Path]) -> None:
    _, out = tiny_run
    assert _leftovers(out) == []
    mode = 0o666 & ~_umask()  # as a plain open() would give, never mkstemp's private 0600
    for name in ("results.json", "results.csv", "summary.md", "rd_psnr.png", "provenance.json",
                 "points/x265_qp30.json", "points/x265_qp30.csv"):
        assert (out / name).stat().st_mode & 0o777 == mode, name
    assert (out / "rd_psnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not STORED, reason="no stored results under docs/results")
@pytest.mark.parametrize("path", STORED, ids=[p.parent.name for p in STORED])
def test_stored_results_still_load(path: Path) -> None:
    d = json.loads(path.read_text())
    res = EvalResults.from_json(d)
    back = res.to_json()
    # points (and everything else) come back exactly; BD entries stored before the envelope existed
    # read as strict numbers and are written in the current form
    assert {k: v for k, v in back.items() if k != "bd_rate"} == {k: v for k, v in d.items() if k != "bd_rate"}
    assert [e.value for e in res.bd_rate] == [e["bd_rate"] for e in d["bd_rate"]]
    assert [(e.test, e.anchor, e.metric, e.method) for e in res.bd_rate] == [
        (e["test"], e["anchor"], e["metric"], e["method"]) for e in d["bd_rate"]
    ]


def test_eval_point_schema() -> None:
    p = EvalPoint("x265_qp30", "x265", qp=30, kbps_total=float("nan"), map50=0.5,
                  unmeasured=frozenset({"map50_full"}))
    assert "map50_full" not in p.to_json() and p.to_json()["psnr_y"] is None
    assert p.finite().kbps_total is None and p.finite().map50 == 0.5
    assert p.csv_row()["kbps_total"] == "nan" and p.csv_row()["qp"] == 30 and p.csv_row()["map50"] == "0.5"
    assert p.rd("kbps_total", "map50") is None
    assert EvalPoint("a", "x265", kbps_total=10.0, map50=0.5).rd("kbps_total", "map50") == (10.0, 0.5)
    with pytest.raises(KeyError):
        p.value("id")
    with pytest.raises(ValueError, match="hold values"):
        EvalPoint("a", "x265", map50=0.5, unmeasured=frozenset({"map50"}))
    with pytest.raises(InputError, match="unknown fields"):
        EvalPoint.from_json({"id": "a", "system": "x265", "mAP": 0.5})
    with pytest.raises(InputError, match="'qp' must be"):
        EvalPoint.from_json({"id": "a", "system": "x265", "qp": "30"})
    with pytest.raises(InputError, match="not a vcodec eval results file"):
        EvalResults.from_json({"points": []})


def test_atomic_json_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vcodec import _atomic
    from vcodec.eval.output import write_json

    target = tmp_path / "results.json"
    target.write_text('{"old": true}\n')

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_atomic.os, "fsync", no_space)
    with pytest.raises(OutputError, match="cannot finish"):
        write_json(target, {"new": list(range(1000))})
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_failed_plot_leaves_no_file(
    tiny_run: tuple[EvalResults, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.figure

    from vcodec.eval.report import write_plots

    res, _ = tiny_run

    def half_written(self: matplotlib.figure.Figure, fname: object, **kw: object) -> None:
        fname.write(b"\x89PNG\r\n\x1a\n half")  # type: ignore[attr-defined]
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_plots(res, tmp_path)
    assert list(tmp_path.iterdir()) == []
