"""Multi-object tracking for MOTA / IDF1: an IoU + constant-velocity Kalman tracker and motmetrics.

:class:`Tracker` follows the SORT recipe: each track is a Kalman filter on the
box centre and size with constant velocity; every frame the tracks are
predicted, the predictions are matched to the new detections by IoU with
:func:`scipy.optimize.linear_sum_assignment` (a detection of another class
never matches), unmatched detections start tracks, and tracks unmatched for
more than ``max_age`` frames end.  A track is reported once it has been
matched ``min_hits`` frames in a row (or, during the first ``min_hits`` frames
of the sequence, at once, so that objects present from the start are not
missed).  Deterministic: no randomness, ties broken by the solver's order.

:func:`mot_metrics` scores tracks against ground truth with ids using
motmetrics (CLEAR-MOT MOTA and the ID-based IDF1) at an IoU of 0.5.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from vcodec.errors import ConfigError
from vcodec.eval.groundtruth import FrameTruth, GroundTruth

__all__ = ["TrackedFrame", "Tracker", "iou_matrix", "track_detections", "mot_metrics", "ground_truth_tracks"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N x 4, xyxy) with every box in ``b`` (M x 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class TrackedFrame:
    """Tracks reported in one frame: ids, boxes (xyxy) and COCO80 classes."""

    ids: np.ndarray
    boxes: np.ndarray
    class_ids: np.ndarray


class _KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, w, h)."""

    def __init__(self, box: np.ndarray) -> None:
        self.x = np.zeros(8)
        self.x[:4] = _to_cxcywh(box)
        # large initial velocity uncertainty: the first match sets the speed
        self.P = np.diag([10.0, 10.0, 10.0, 10.0, 1e3, 1e3, 1e3, 1e3])
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)
        self.Q = np.diag([1.0, 1.0, 1.0, 1.0, 0.01, 0.01, 0.01, 0.01])
        self.R = np.diag([1.0, 1.0, 10.0, 10.0])

    def predict(self) -> np.ndarray:
        self.x = self.F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1e-3)  # a box never shrinks below nothing
        self.P = self.F @ self.P @ self.F.T + self.Q
        return _to_xyxy(self.x[:4])

    def update(self, box: np.ndarray) -> None:
        z = _to_cxcywh(box)
        y = z - self.H @ self.x
        s = self.H @ self.P @ self.H.T + self.R
        k = self.P @ self.H.T @ np.linalg.inv(s)
        self.x = self.x + k @ y
        self.P = (np.eye(8) - k @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return _to_xyxy(self.x[:4])


def _to_cxcywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float64)
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


def _to_xyxy(s: np.ndarray) -> np.ndarray:
    return np.array([s[0] - s[2] / 2, s[1] - s[3] / 2, s[0] + s[2] / 2, s[1] + s[3] / 2])


class _Track:
    def __init__(self, track_id: int, box: np.ndarray, class_id: int) -> None:
        self.id = track_id
        self.kf = _KalmanBox(box)
        self.class_id = class_id
        self.hits = 1
        self.streak = 1
        self.since_update = 0
        self.last_box = np.asarray(box, np.float64)


class Tracker:
    """IoU + constant-velocity Kalman multi-object tracker (see the module docstring)."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 3, min_hits: int = 1) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ConfigError(f"tracker iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_age < 0 or min_hits < 1:
            raise ConfigError(f"tracker needs max_age >= 0 and min_hits >= 1, got {max_age}, {min_hits}")
        self.iou_threshold = float(iou_threshold)
        self.max_age = int(max_age)
        self.min_hits = int(min_hits)
        self.tracks: list[_Track] = []
        self.frame_count = 0
        self._next_id = 1

    def update(self, boxes: np.ndarray, class_ids: np.ndarray | None = None) -> TrackedFrame:
        """Feed one frame's detections (xyxy boxes, COCO80 classes); returns the tracks to report."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        classes = (
            np.zeros(len(boxes), np.int64)
            if class_ids is None
            else np.asarray(class_ids, np.int64).reshape(-1)
        )
        self.frame_count += 1
        predicted = np.array([t.kf.predict() for t in self.tracks]).reshape(-1, 4)
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if len(self.tracks) and len(boxes):
            iou = iou_matrix(predicted, boxes)
            same = np.array([[t.class_id == c for c in classes] for t in self.tracks])
            cost = np.where(same, 1.0 - iou, 2.0)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if same[r, c] and iou[r, c] >= self.iou_threshold:
                    t = self.tracks[r]
                    t.kf.update(boxes[c])
                    t.last_box = boxes[c]
                    t.hits += 1
                    t.streak += 1
                    t.since_update = 0
                    matched_t.add(r)
                    matched_d.add(c)
        for r, t in enumerate(self.tracks):
            if r not in matched_t:
                t.since_update += 1
                t.streak = 0
        for c in range(len(boxes)):
            if c not in matched_d:
                self.tracks.append(_Track(self._next_id, boxes[c], int(classes[c])))
                self._next_id += 1
        self.tracks = [t for t in self.tracks if t.since_update <= self.max_age]
        shown = [
            t
            for t in self.tracks
            if t.since_update == 0 and (t.streak >= self.min_hits or self.frame_count <= self.min_hits)
        ]
        # report the matched detection box (what the detector saw), not the filter's estimate
        return TrackedFrame(
            np.array([t.id for t in shown], np.int64),
            np.array([t.last_box for t in shown], np.float64).reshape(-1, 4),
            np.array([t.class_id for t in shown], np.int64),
        )


def track_detections(
    frames: Iterable[tuple[int, Any]], min_score: float = 0.3, **tracker_kw: Any
) -> dict[int, TrackedFrame]:
    """Run a fresh :class:`Tracker` over ``(frame_index, Detections)`` in frame order."""
    tracker = Tracker(**tracker_kw)
    out: dict[int, TrackedFrame] = {}
    for index, det in sorted(frames, key=lambda p: p[0]):
        d = det.filter(min_score)
        out[int(index)] = tracker.update(d.boxes, d.class_ids)
    return out


def ground_truth_tracks(truth: GroundTruth, **tracker_kw: Any) -> tuple[dict[int, FrameTruth], bool]:
    """Ground truth with track ids: its own, or (formats without ids) ids given by the tracker.

    Returns ``(frames, assigned)``; ``assigned`` says the ids come from the
    tracker run on the ground-truth boxes (every report flags that).
    """
    if truth.has_track_ids:
        return {i: truth.frame(i) for i in truth.annotated}, False
    tracker_kw.setdefault("min_hits", 1)
    tracker = Tracker(**tracker_kw)
    out: dict[int, FrameTruth] = {}
    for i in truth.annotated:
        f = truth.frame(i)
        keep = ~f.ignore
        tracked = tracker.update(f.boxes[keep], f.class_ids[keep])
        # min_hits=1 reports every box it was given, so each box gets an id
        out[i] = FrameTruth(tracked.boxes, tracked.class_ids, tracked.ids)
    return out, True


def mot_metrics(
    truth: Mapping[int, FrameTruth], tracks: Mapping[int, TrackedFrame], iou_threshold: float = 0.5
) -> dict[str, float]:
    """MOTA, IDF1 and counts of ``tracks`` against ``truth`` (frames with track ids).

    Hypotheses that overlap an ignored ground-truth box by IoU >= ``iou_threshold``
    are removed first.  Frames in ``truth`` without tracks count as misses.
    """
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    for i in sorted(truth):
        gt = truth[i]
        hyp = tracks.get(i, TrackedFrame(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)))
        hb, hid = np.asarray(hyp.boxes, np.float64).reshape(-1, 4), np.asarray(hyp.ids)
        gb, gid = gt.boxes[~gt.ignore].astype(np.float64), gt.track_ids[~gt.ignore]
        if gt.ignore.any() and len(hb):
            on_ignored = (iou_matrix(hb, gt.boxes[gt.ignore]) >= iou_threshold).any(axis=1)
            hb, hid = hb[~on_ignored], hid[~on_ignored]
        dist = 1.0 - iou_matrix(gb, hb)
        dist[dist > 1.0 - iou_threshold] = np.nan  # motmetrics: NaN = may not match
        acc.update(gid.tolist(), hid.tolist(), dist, frameid=int(i))
    mh = mm.metrics.create()
    summary = mh.compute(
        acc,
        metrics=["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects"],
        name="seq",
    )
    row = summary.loc["seq"]
    return {
        "mota": float(row["mota"]),
        "idf1": float(row["idf1"]),
        "id_switches": int(row["num_switches"]),
        "false_positives": int(row["num_false_positives"]),
        "misses": int(row["num_misses"]),
        "gt_objects": int(row["num_objects"]),
    }
