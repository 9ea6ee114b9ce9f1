"""tools/make_results.py's plain words where a BD-rate cannot be computed, and its frames column."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from vcodec.eval.points import EvalPoint, EvalResults
from vcodec.eval.training import TrainingOverlap

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@pytest.fixture(scope="module")
def make_results() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_results_under_test", TOOLS / "make_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _results(base: list[tuple[float, float]], x265: list[tuple[float, float]],
             overlap: tuple[TrainingOverlap, ...] | None = None) -> EvalResults:
    points = [EvalPoint(f"vcodec-base_q{i}", "vcodec-base", base_quality=i / 4, kbps_base=r, kbps_total=r,
                        map50=m) for i, (r, m) in enumerate(base)]
    points += [EvalPoint(f"x265_qp{qp}", "x265", qp=qp, kbps_total=r, map50=m)
               for qp, (r, m) in zip((51, 42, 32, 22)[:len(x265)], x265, strict=True)]
    return EvalResults("clip.mp4", 32, 25.0, (64, 48), "gt", True, {}, tuple(points), (), None, None, overlap)


def test_a_base_layer_that_tops_out_below_the_anchor_is_not_called_at_least_as_accurate(
        make_results: ModuleType) -> None:
    # car-detection in results8: cheaper and better than x265's cheapest point, never near its best
    res = _results([(5.6, 0.474), (12.7, 0.456), (385.6, 0.433)],
                   [(11.3, 0.239), (22.5, 0.709), (261.6, 0.909)])
    text = make_results._plain_comparison(res, "x265")
    assert "its best 0.909 at 261.6" in text and "**never reaches**" in text
    assert "at least as accurate" not in text


@pytest.mark.parametrize(("base", "verdict"), [
    ([(5.6, 1.0), (7.0, 1.0)], "both cheaper and at least as accurate as every x265 point"),
    ([(30.0, 0.2), (60.0, 0.3)], "**vcodec loses** outright"),
    ([(4.8, 0.941), (45.5, 1.0)], "mixed (more points are needed"),
])
def test_plain_comparison_verdicts(make_results: ModuleType, base: list[tuple[float, float]],
                                   verdict: str) -> None:
    res = _results(base, [(11.2, 1.0), (20.0, 1.0), (90.0, 1.0)] if verdict.startswith(("both", "mixed"))
                   else [(11.0, 0.5), (20.0, 0.8)])
    assert verdict in make_results._plain_comparison(res, "x265")


def test_frames_column_says_held_out_or_how_many_frames_were_trained_on(make_results: ModuleType) -> None:
    held = (TrainingOverlap("base model", "m", 32, 951, 0),
            TrainingOverlap("adapted back end", "b", 32, 951, 0))
    assert make_results._frames_cell(_results([], [], held)) == "951-982: held out"
    trained = (TrainingOverlap("base model", "m", 32, 0, 24, ((0, 23),)),
               TrainingOverlap("adapted back end", "b", 32, 0, None))
    assert make_results._frames_cell(_results([], [], trained)) == "0-31: **24 / ? of 32 trained on**"
    assert make_results._frames_cell(_results([], [], None)) == "32 (training overlap not recorded)"
