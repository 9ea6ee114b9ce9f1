"""`vcodec eval --bootstrap N`: mAP@0.5 intervals over frame resamples (vcodec.eval.detection)."""

from __future__ import annotations

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
