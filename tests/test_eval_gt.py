"""Ground-truth readers of vcodec eval on small files in every format, and the class map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vcodec.detection import Detections
from vcodec.errors import ConfigError, InputError
from vcodec.eval import GroundTruth, from_coco80, load_ground_truth, pseudo_ground_truth, to_coco80
from vcodec.eval.groundtruth import detect_gt_format


def test_class_map_round_trips() -> None:
    assert to_coco80("coco", 1) == 0 and to_coco80("coco", 3) == 2 and to_coco80("coco", 90) == 79
    assert to_coco80("coco", 12) is None  # a gap in the official ids
    assert from_coco80("coco", 79) == 90
    assert all(to_coco80("coco", from_coco80("coco", c)) == c for c in range(80))
    assert to_coco80("sfu", 2) == 2 and to_coco80("sfu", 80) is None
    assert to_coco80("mot", 1) == 0 and to_coco80("mot", 3) == 2 and to_coco80("mot", 9) is None
    assert from_coco80("mot", 0) == 1 and from_coco80("mot", 5) is None
    with pytest.raises(ConfigError, match="class-map format"):
        to_coco80("voc", 1)


def test_sfu_objects(tmp_path: Path) -> None:
    d = tmp_path / "BasketballPass"
    d.mkdir()
    (d / "BasketballPass_416x240_50_seq_000.txt").write_text("0 0.5 0.5 0.25 0.5\n2 0.1 0.2 0.1 0.1\n")
    (d / "BasketballPass_416x240_50_seq_001.txt").write_text("")  # annotated, no objects
    (d / "BasketballPass_416x240_50_seq_003.txt").write_text("0 0.5 0.5 0.25 0.5 0.87\n")  # score column
    assert detect_gt_format(d) == "sfu-objects"
    g = load_ground_truth(d, width=416, height=240)
    assert g.format == "sfu-objects" and not g.pseudo and not g.has_track_ids
    assert g.annotated == [0, 1, 3]
    f0 = g.frame(0)
    assert f0.boxes[0].tolist() == pytest.approx([156.0, 60.0, 260.0, 180.0])
    assert f0.class_ids.tolist() == [0, 2] and f0.track_ids.tolist() == [-1, -1]
    assert len(g.frame(1)) == 0 and len(g.frame(3)) == 1
    assert g.num_objects == 3
    with pytest.raises(ConfigError, match="normalised"):
        load_ground_truth(d)
    (d / "BasketballPass_416x240_50_seq_004.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(InputError, match="seq_004.txt:1"):
        load_ground_truth(d, width=416, height=240)


def test_sfu_tracks_and_stem_choice(tmp_path: Path) -> None:
    (tmp_path / "A_416x240_50_seq_000.txt").write_text("0 7 0.5 0.5 0.25 0.5\n2 9 0.1 0.2 0.1 0.1\n")
    (tmp_path / "A_416x240_50_seq_001.txt").write_text("0 7 0.52 0.5 0.25 0.5\n")
    (tmp_path / "B_416x240_50_seq_000.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    with pytest.raises(ConfigError, match="2 sequences"):
        load_ground_truth(tmp_path, "sfu-tracks", 416, 240)
    g = load_ground_truth(tmp_path, "sfu-tracks", 416, 240, stem="A")
    assert (
        g.has_track_ids and g.frame(0).track_ids.tolist() == [7, 9] and g.frame(1).track_ids.tolist() == [7]
    )
    only = tmp_path / "only"
    only.mkdir()
    (only / "A_seq_000.txt").write_text("0 7 0.5 0.5 0.25 0.5\n")
    assert detect_gt_format(only) == "sfu-tracks"


def test_mot_gt(tmp_path: Path) -> None:
    seq = tmp_path / "MOT17-02"
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text(
        "1,1,10,20,30,40,1,1,1.0\n"  # pedestrian
        "1,2,100,20,30,40,0,1,0.2\n"  # inactive pedestrian -> ignore
        "2,1,12,20,30,40,1,1,1.0\n"
        "2,5,200,50,60,30,1,3,1.0\n"  # car
        "2,6,0,0,10,10,1,9,1.0\n"  # occluder: dropped
        "3,7,50,50,20,40,1,7,1.0\n"  # static person: ignore region
    )
    assert detect_gt_format(seq) == "mot"
    g = load_ground_truth(seq, width=640, height=480)
    assert g.format == "mot" and g.has_track_ids and g.annotated == [0, 1, 2]
    f0 = g.frame(0)
    assert f0.boxes[0].tolist() == [10, 20, 40, 60] and f0.ignore.tolist() == [False, True]
    f1 = g.frame(1)
    assert f1.class_ids.tolist() == [0, 2] and f1.track_ids.tolist() == [1, 5]
    assert g.frame(2).ignore.tolist() == [True]
    assert g.num_objects == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("0,1,10,20,30,40\n")
    with pytest.raises(InputError, match="count from 1"):
        load_ground_truth(bad)


def test_coco_gt(tmp_path: Path) -> None:
    data = {
        "images": [
            {"id": 11, "file_name": "frame_0005.jpg", "width": 320, "height": 240},
            {"id": 12, "file_name": "frame_0006.jpg", "width": 320, "height": 240},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 99, "name": "robot"}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 3, "image_id": 12, "category_id": 99, "bbox": [0, 0, 5, 5]},
        ],
    }
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(data))
    g = load_ground_truth(p)
    assert (g.width, g.height) == (320, 240) and g.annotated == [5, 6]
    f = g.frame(5)
    assert f.class_ids.tolist() == [2, 0] and f.ignore.tolist() == [False, True]
    assert f.boxes[0].tolist() == [10, 20, 40, 60]
    assert len(g.frame(6)) == 0 and "1 annotations" in g.notes
    p.write_text("[]")
    with pytest.raises(InputError, match="results file"):
        load_ground_truth(p)


def test_pseudo_gt_is_flagged_and_serialises() -> None:
    dets = [(0, Detections([[1, 2, 30, 40], [5, 5, 9, 9]], [0.9, 0.1], [0, 2], 64, 48)), (1, Detections())]
    g = pseudo_ground_truth(dets, 64, 48, "yolox-nano", min_score=0.3)
    assert g.pseudo and "PSEUDO" in g.describe() and "yolox-nano" in g.source
    assert len(g.frame(0)) == 1 and g.annotated == [0, 1]
    back = GroundTruth.from_json(json.loads(json.dumps(g.to_json())))
    assert back.pseudo and back.annotated == [0, 1]
    assert np.allclose(back.frame(0).boxes, g.frame(0).boxes)
    assert g.restrict([1]).annotated == [1]
