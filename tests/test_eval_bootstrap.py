"""`vcodec eval --bootstrap N`: mAP@0.5 intervals over frame resamples (vcodec.eval.detection)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vcodec.detection.base import Detections
from vcodec.errors import ConfigError
from vcodec.eval.config import EvalConfig
from vcodec.eval.detection import detection_map, map50_interval
from vcodec.eval.groundtruth import FrameTruth, GroundTruth

BOX = np.array([[10.0, 10.0, 50.0, 60.0]], np.float32)


def _truth(frames: int) -> GroundTruth:
    """One person (class 0) per frame, at the same place."""
    return GroundTruth({i: FrameTruth(BOX, np.array([0])) for i in range(frames)}, 100, 100, "test", "test")


def _hit() -> Detections:
    return Detections(BOX.copy(), np.array([0.9], np.float32), np.array([0]))


def test_perfect_and_empty_predictions_have_degenerate_intervals() -> None:
    truth = _truth(10)
    assert map50_interval(truth, {i: _hit() for i in range(10)}, None, 50) == (1.0, 1.0)
    # frames without predictions count as detecting nothing, in every resample
    assert map50_interval(truth, {0: Detections()}, None, 50) == (0.0, 0.0)


def test_the_interval_brackets_a_half_right_system_and_is_seeded() -> None:
    truth = _truth(20)
    preds = {i: (_hit() if i % 2 else Detections()) for i in range(20)}  # finds every other object
    point = detection_map(truth, preds)["map50"]
    low, high = map50_interval(truth, preds, None, 200)
    assert low < point < high and 0.0 <= low and high <= 1.0
    # the same resamples on every call: points of one run (and reruns) are comparable
    assert map50_interval(truth, preds, None, 200) == (low, high)
    assert map50_interval(truth, preds, None, 200, seed=1) != (low, high)
    # more frames, the same hit rate: a narrower interval
    wide = high - low
    preds80 = {i: (_hit() if i % 2 else Detections()) for i in range(80)}
    low80, high80 = map50_interval(_truth(80), preds80, None, 200)
    assert high80 - low80 < wide


@pytest.mark.parametrize("bad", [-1, 100_001, 2.5, True])
def test_bad_bootstrap_counts_are_refused(bad: object) -> None:
    cfg = EvalConfig(input="x.y4m", output="out", bootstrap=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="bootstrap"):
        cfg.check()


def _reference_interval(truth: GroundTruth, preds: dict[int, Detections], classes: list[int] | None,
                        resamples: int, seed: int = 0) -> tuple[float, float]:
    """The definition: each resample scored afresh by detection_map, frames renumbered 0..n-1."""
    frames = list(truth.annotated)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        picks = [int(i) for i in rng.choice(frames, size=len(frames), replace=True)]
        sample = GroundTruth({k: truth.frame(i) for k, i in enumerate(picks)}, truth.width, truth.height,
                             "test", "test", False, False, list(range(len(picks))))
        got = {k: preds[i] for k, i in enumerate(picks) if i in preds} or {0: Detections()}
        v = detection_map(sample, got, classes)["map50"]
        if np.isfinite(v):
            values.append(v)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@pytest.mark.parametrize("classes", [None, [0, 2]])
def test_matching_once_equals_scoring_every_resample_afresh(classes: list[int] | None) -> None:
    """Three classes (one rare), crowd regions, missing and empty frames, ties in score, jittered and
    spurious boxes: the fast path gives exactly what scoring each resample from scratch gives."""
    rng = np.random.default_rng(7)
    frames: dict[int, FrameTruth] = {}
    preds: dict[int, Detections] = {}
    for i in range(24):
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 150, (n, 2))
        boxes = np.hstack([xy, xy + rng.uniform(10, 60, (n, 2))]).astype(np.float32)
        cls = rng.choice([0, 0, 2, 2, 5], size=n)
        frames[i] = FrameTruth(boxes, cls, ignore=rng.uniform(size=n) < 0.15)
        if i % 7 == 3:
            continue  # a frame the system did not deliver
        keep = rng.uniform(size=n) < 0.7
        jitter = rng.normal(0, 4, (int(keep.sum()), 4)).astype(np.float32)
        extra = int(rng.integers(0, 3))
        exy = rng.uniform(0, 150, (extra, 2))
        pboxes = np.vstack([boxes[keep] + jitter, np.hstack([exy, exy + 30]).astype(np.float32)])
        scores = np.round(rng.uniform(0.01, 1.0, len(pboxes)), 1).astype(np.float32)  # ties
        pcls = np.concatenate([cls[keep], rng.choice([0, 2, 5], size=extra)])
        order = np.argsort(-scores, kind="stable")
        preds[i] = Detections(pboxes[order], scores[order], pcls[order].astype(np.int64))
    truth = GroundTruth(frames, 220, 220, "test", "test", annotated=list(range(24)))
    fast = map50_interval(truth, preds, classes, 60)
    assert fast == pytest.approx(_reference_interval(truth, preds, classes, 60), abs=1e-12)
    assert fast[0] < fast[1]


def test_bd_bootstrap_tool_on_a_system_that_matches_the_anchor_at_half_the_rate(tmp_path: Path) -> None:
    """tools/bd_bootstrap.py: a base layer whose detections at each point are the anchor's at the
    same rank, at half the anchor's rate, needs 50 % fewer bits on every resample of the frames."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from bd_bootstrap import bd_interval

    from vcodec.eval.points import dets_to_json

    rng = np.random.default_rng(3)
    frames = 16
    truth = GroundTruth({i: FrameTruth(BOX, np.array([0])) for i in range(frames)}, 100, 100, "test", "test",
                        pseudo=True)
    (tmp_path / "points").mkdir()
    (tmp_path / "groundtruth.json").write_text(json.dumps(truth.to_json()))
    points = []
    for rank, hit_rate in enumerate((0.3, 0.6, 0.8, 0.95)):
        hits = {i: (_hit() if rng.uniform() < hit_rate else Detections()) for i in range(frames)}
        rate = 10.0 * 2 ** rank
        for system, pid, kbps in (("x265", f"x265_qp{40 - rank}", rate),
                                  ("vcodec-base", f"vcodec-base_q{rank / 4:.2f}", rate / 2)):
            m = detection_map(truth, hits)["map50"]
            points.append({"id": pid, "system": system, "kbps_total": kbps, "map50": m,
                           "kbps_base": kbps if system == "vcodec-base" else None})
            stored = {"detections": dets_to_json(hits.items())}
            (tmp_path / "points" / f"{pid}.json").write_text(json.dumps(stored))
    (tmp_path / "results.json").write_text(json.dumps({"points": points}))
    row = bd_interval(tmp_path, "x265", 100)
    assert row["bd_rate"] == pytest.approx(-50.0)
    assert row["interval"] == pytest.approx([-50.0, -50.0]) and row["share_at_most_0"] == 1.0
    assert row["with_a_number"] > 50  # resamples whose curves are not monotonic give none
