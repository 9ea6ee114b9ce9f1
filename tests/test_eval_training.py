"""Which evaluated frames a model trained on (vcodec.eval.training), from real and made-up records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcodec.eval.points import EvalResults
from vcodec.eval.training import (
    TrainingOverlap,
    describe_overlaps,
    frame_ranges,
    model_overlap,
    trained_frames,
)

PACK_RECORD = {
    "data": {
        "per_clip": {"a.mp4": 12, "unused.mp4": 0},
        "held_out_frames": {"a.mp4": [[10, 20], [40, 50]], "unused.mp4": [[0, 5]]},
    }
}
CLIP_LIST_RECORD = {"data": ["a.mp4 (step 3, 30 frames: 24 train, 6 val)",
                             "b.yuv (step 1, 9 frames: 6 train, 3 val)"]}
SEGMENT_RECORD = {"train_segments": ["a.mp4 frames 5-8 at q [0.25]", "folder/b.yuv frames 0-2 at q [1.0]"]}


def test_pack_record_trains_on_every_frame_of_a_drawn_clip_outside_its_held_out_ranges() -> None:
    assert trained_frames(PACK_RECORD, "a.mp4", range(8, 22)) == {8, 9, 20, 21}
    assert trained_frames(PACK_RECORD, "/some/where/a.mp4", range(40, 50)) == set()
    assert trained_frames(PACK_RECORD, "unused.mp4", range(0, 30)) == set()  # no sequence drawn
    assert trained_frames(PACK_RECORD, "other.mp4", range(0, 30)) == set()


def test_clip_list_record_trains_on_every_step_th_frame_of_its_training_part() -> None:
    # 24 training frames at step 3: 0, 3, ..., 69
    assert trained_frames(CLIP_LIST_RECORD, "a.mp4", range(60, 80)) == {60, 63, 66, 69}
    assert trained_frames(CLIP_LIST_RECORD, "b.yuv", range(0, 9)) == {0, 1, 2, 3, 4, 5}


def test_segment_record_is_inclusive_and_matches_clips_by_file_name() -> None:
    assert trained_frames(SEGMENT_RECORD, "a.mp4", range(0, 20)) == {5, 6, 7, 8}
    assert trained_frames(SEGMENT_RECORD, "b.yuv", range(2, 4)) == {2}


@pytest.mark.parametrize("record", [{}, {"data": "whatever"}, {"train_segments": ["no frames here"]},
                                    {"data": ["a.mp4 without the layout"]}])
def test_an_unreadable_record_gives_unknown_not_zero(record: dict) -> None:
    assert trained_frames(record, "a.mp4", range(0, 10)) is None
    overlap = model_overlap("base model", "m", record, "a.mp4", 0, 10, weights_dir=Path("/nonexistent"))
    assert overlap.trained is None and "unknown" in overlap.describe()


def test_frame_ranges_are_runs_of_consecutive_frames() -> None:
    assert frame_ranges([7, 1, 2, 3, 9, 8, 20]) == ((1, 3), (7, 9), (20, 20))
    assert frame_ranges([]) == ()


def _write_record(folder: Path, model_id: str, training: dict) -> None:
    (folder / f"{model_id}.json").write_text(json.dumps({"model_id": model_id, "training": training}))


def test_overlap_follows_the_init_chain_to_the_models_a_model_started_from(tmp_path: Path) -> None:
    _write_record(tmp_path, "parent", {**CLIP_LIST_RECORD, "init": "grandparent (sha256 00ff)"})
    _write_record(tmp_path, "grandparent", {"train_segments": ["a.mp4 frames 100-101 at q [0.5]"]})
    child = {**PACK_RECORD, "init": "parent (sha256 abc123)"}
    overlap = model_overlap("base model", "child", child, "a.mp4", 0, 110, weights_dir=tmp_path)
    expected = (set(range(0, 10)) | set(range(20, 40)) | set(range(50, 110))  # the child's own
                | set(range(0, 72, 3)) | {100, 101})
    assert overlap.trained == len(expected)
    assert overlap.ranges == frame_ranges(expected)


def test_an_init_that_names_no_model_ends_the_chain_and_a_cycle_does_not_hang(tmp_path: Path) -> None:
    _write_record(tmp_path, "x", {"train_segments": [], "init": "y (sha256 01)"})
    _write_record(tmp_path, "y", {"train_segments": [], "init": "x (sha256 02)"})
    overlap = model_overlap("base model", "x", {"train_segments": [], "init": "x (sha256 03)"}, "a.mp4", 0, 5,
                            weights_dir=tmp_path)
    assert overlap.trained == 0 and "none of frames 0-4" in overlap.describe()
    ended = model_overlap("base model", "z", {**SEGMENT_RECORD, "init": "run D's checkpoint"}, "a.mp4", 0, 10,
                          weights_dir=tmp_path)
    assert ended.trained == 4 and ended.describe().endswith("4 of 10 (5-8)")


def test_overlap_round_trips_through_results_json_and_old_results_still_load() -> None:
    o = TrainingOverlap("adapted back end", "backend-m", 32, 100, 3, ((100, 101), (110, 110)))
    assert TrainingOverlap.from_json(json.loads(json.dumps(o.to_json()))) == o
    base = {"input": "a.mp4", "frames": 32, "fps": 25.0, "size": [64, 48], "ground_truth": "gt",
            "pseudo_ground_truth": True, "provenance": {}, "points": [], "bd_rate": []}
    assert EvalResults.from_json(base).training_overlap is None
    res = EvalResults.from_json({**base, "training_overlap": [o.to_json()]})
    assert res.training_overlap == (o,)
    assert res.to_json()["training_overlap"] == [o.to_json()]
    assert "3 of 32 (100-101, 110)" in describe_overlaps([o])


def test_shipped_models_records_are_readable_and_say_what_they_trained_on() -> None:
    """The shipped default base model and its adapted back end: the clips' training frames are
    those their records list (the evaluation windows of tools/make_results.py rely on it)."""
    from vcodec.baselayer.learned.plugin import LearnedBaseFactory

    base = LearnedBaseFactory().for_encoding("base-yolox-nano-v3")
    parts = base.trained_parts(base.build_detector())
    assert [p.role for p in parts] == ["base model", "adapted back end"]

    def overlaps(clip: str, first: int, count: int) -> list[int | None]:
        return [model_overlap(p.role, p.model, p.record, clip, first, count).trained for p in parts]

    assert overlaps("cars_320x240.i420", 0, 30) == [24, 24]  # its last 6 frames are held out
    assert overlaps("one-by-one-person-detection.mp4", 1115, 96) == [0, 0]
    assert overlaps("car-detection.mp4", 320, 32) == [0, 0]
    assert overlaps("bottle-detection.mp4", 951, 32) == [0, 0]
    # the base model's lineage (base-yolox-nano-v2, by its init) trained on frames 0-5 of Cisco
    assert overlaps("CiscoVT2people_320x192_12fps.yuv", 0, 9) == [6, 6]
