"""Detection accuracy: mAP@0.5 and COCO mAP@[.5:.95] with pycocotools.

The ground truth (:class:`~vcodec.eval.groundtruth.GroundTruth`) and the
predictions (one :class:`~vcodec.detection.Detections` per frame) are handed to
pycocotools' ``COCOeval`` as in-memory COCO datasets, so the numbers are the
standard COCO ones: 101-point interpolated precision, greedy matching by
score, areas "all", at most ``max_dets`` detections per frame.  Ignore regions
(``FrameTruth.ignore``) become ``iscrowd`` annotations: detections on them are
neither true nor false positives.  mAP is the mean over the classes present in
the ground truth (:func:`scored_classes`: with pseudo ground truth, over the
classes with at least :data:`PSEUDO_MIN_CLASS_OBJECTS` objects).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcodec.detection.base import COCO80, Detections
from vcodec.errors import InputError
from vcodec.eval.groundtruth import GroundTruth

__all__ = [
    "BOOTSTRAP_SEED", "PSEUDO_MIN_CLASS_OBJECTS", "ScoredClasses", "detection_map", "map50_interval",
    "map50_resamples", "scored_classes", "truth_classes",
]

#: with pseudo ground truth, classes with fewer objects than this in the evaluated frames are left
#: out of the class mean: they are mostly the reference detector's own rare mistakes (a "teddy
#: bear" on 3 frames of a person clip), and one missed object there would move the mean as much as
#: every object of a class with a hundred
PSEUDO_MIN_CLASS_OBJECTS = 5


@dataclass(frozen=True)
class ScoredClasses:
    """Which ground-truth classes mAP averages (COCO80 indexes), and the ones it leaves out."""

    minimum: int
    counted: dict[int, int]
    left_out: dict[int, int]

    @property
    def classes(self) -> tuple[int, ...] | None:
        """The ``classes`` argument of :func:`detection_map` (None: every class)."""
        return None if not self.left_out else tuple(sorted(self.counted))

    def describe(self) -> str:
        def names(d: dict[int, int]) -> str:
            return ", ".join(f"{COCO80[c]} {n}" for c, n in sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))

        if not self.left_out:
            return f"mAP over every class of the ground truth ({names(self.counted) or 'none'})"
        return (f"mAP over the classes with at least {self.minimum} objects ({names(self.counted)}); "
                f"left out: {names(self.left_out)}")


def scored_classes(counts: Mapping[int, int], minimum: int) -> ScoredClasses:
    """The classes with at least ``minimum`` objects; every class when none has that many (a
    mean over nothing would hide that the clip holds objects)."""
    kept = {int(c): int(n) for c, n in counts.items() if n >= minimum}
    if not kept:
        return ScoredClasses(minimum, {int(c): int(n) for c, n in counts.items()}, {})
    return ScoredClasses(minimum, kept, {int(c): int(n) for c, n in counts.items() if n < minimum})


def truth_classes(truth: GroundTruth, min_class_objects: int | None = None) -> ScoredClasses:
    """The classes mAP averages for ``truth``: those with at least ``min_class_objects`` objects
    (None: :data:`PSEUDO_MIN_CLASS_OBJECTS` for pseudo ground truth, every class for labels)."""
    minimum = min_class_objects or (PSEUDO_MIN_CLASS_OBJECTS if truth.pseudo else 1)
    return scored_classes(truth.class_counts(), minimum)


@dataclass
class _CocoInput:
    """The in-memory COCO datasets of one scoring: images, ground truth and detections, and the
    (1-based) categories that hold a counted ground-truth object."""

    images: list[dict[str, Any]]
    anns: list[dict[str, Any]]
    dets: list[dict[str, Any]]

    @property
    def counted(self) -> list[int]:
        return sorted({a["category_id"] for a in self.anns if not a["iscrowd"]})


def _coco_input(truth: GroundTruth, preds: Mapping[int, Detections], classes: Sequence[int] | None
                ) -> _CocoInput:
    keep = None if classes is None else set(int(c) for c in classes)
    out = _CocoInput([], [], [])
    for i in truth.annotated:
        out.images.append({"id": i, "width": max(truth.width, 1), "height": max(truth.height, 1)})
        gt = truth.frame(i)
        for b, c, ign in zip(gt.boxes, gt.class_ids, gt.ignore, strict=True):
            if keep is not None and int(c) not in keep:
                continue
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            out.anns.append(
                {
                    "id": len(out.anns) + 1,
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "iscrowd": int(bool(ign)),
                    "bbox": [float(b[0]), float(b[1]), w, h],
                    "area": w * h,
                }
            )
        # a frame the system did not deliver counts as one without detections: its objects are missed
        p = preds.get(i, Detections())
        for b, s, c in zip(p.boxes, p.scores, p.class_ids, strict=True):
            if keep is not None and int(c) not in keep:
                continue
            out.dets.append(
                {
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "score": float(s),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    return out


def _evaluated(data: _CocoInput, max_dets: int) -> Any:
    """pycocotools' ``COCOeval`` of ``data`` after ``evaluate()``: every image's matches, per class
    and area range, which ``accumulate()`` then turns into precision (needs detections)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = {
        "images": data.images,
        "annotations": data.anns,
        "categories": [{"id": c + 1, "name": COCO80[c]} for c in range(len(COCO80))],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt.createIndex()
        dt = gt.loadRes(data.dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = data.counted
        ev.params.maxDets = [1, 10, int(max_dets)]
        ev.evaluate()
    return ev


def _precision(ev: Any) -> np.ndarray:
    """``accumulate()``'s precision at area "all" and the largest maxDets: [IoU, recall, class];
    -1 = undefined (a class without ground truth)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    # precision: [T IoU thresholds, R recall points, K classes, A areas, M maxDets].
    # Read directly rather than via summarize(), whose stats[0] is hard-wired to 100 detections.
    return np.asarray(ev.eval["precision"])[:, :, :, 0, -1]


def _mean_valid(a: np.ndarray) -> float:
    return float(np.mean(a[a > -1])) if (a > -1).any() else float("nan")


def detection_map(
    truth: GroundTruth,
    predictions: Mapping[int, Detections] | Sequence[Detections],
    classes: Sequence[int] | None = None,
    max_dets: int = 300,
) -> dict[str, Any]:
    """mAP of ``predictions`` against ``truth`` on the annotated frames.

    ``predictions`` maps frame index to detections (a sequence is indexed by
    position); an annotated frame without predictions counts as detecting
    nothing.  ``classes`` (COCO80 indexes) restricts both sides.  Returns
    ``{"map50", "map", "per_class_ap50": {name: ap}, "num_gt", "num_pred", "num_frames"}``;
    mAP is NaN when the ground truth holds no object.
    """
    preds = dict(enumerate(predictions)) if not isinstance(predictions, Mapping) else dict(predictions)
    frames = list(truth.annotated)
    if frames and not any(i in preds for i in frames):
        raise InputError(
            f"no predictions for any annotated frame (annotated: {frames[:5]}..., predicted: "
            f"{sorted(preds)[:5]}...); are the frame indexes of both sides the same?"
        )
    data = _coco_input(truth, preds, classes)
    counted = data.counted
    result: dict[str, Any] = {
        "num_gt": sum(1 for a in data.anns if not a["iscrowd"]),
        "num_pred": len(data.dets),
        "num_frames": len(frames),
        "per_class_ap50": {},
    }
    if not counted:
        return {**result, "map50": float("nan"), "map": float("nan")}
    if not data.dets:
        return {**result, "map50": 0.0, "map": 0.0, "per_class_ap50": {COCO80[c - 1]: 0.0 for c in counted}}
    prec = _precision(_evaluated(data, max_dets))
    per_class = {COCO80[cat - 1]: _mean_valid(prec[0, :, k]) for k, cat in enumerate(counted)}
    return {**result, "map50": _mean_valid(prec[0]), "map": _mean_valid(prec), "per_class_ap50": per_class}


#: the resamples of :func:`map50_interval` are drawn from this seed: every point of a run (and every
#: run of the same frames) is scored on the same resamples, so their intervals compare like for like
BOOTSTRAP_SEED = 0


def map50_resamples(
    truth: GroundTruth,
    predictions: Mapping[int, Detections],
    classes: Sequence[int] | None,
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
    max_dets: int = 300,
) -> np.ndarray:
    """mAP@0.5 on each of ``resamples`` bootstrap resamples of the annotated frames (drawn with
    replacement, as many as there are; NaN where the drawn frames hold no counted object).

    The draws depend only on ``seed`` and the frame list, so two systems scored on the same frames
    get the same resamples: element r of both arrays is a paired comparison (what a BD-rate
    interval needs, ``tools/bd_bootstrap.py``).  Each resample is scored as
    :func:`detection_map` scores a sequence whose frames are the drawn ones (a frame drawn twice
    counts twice).  COCO matches detections to ground truth image by image, so the images are
    matched once and only ``accumulate()`` runs per resample, on the drawn images' matches in the
    drawn order (tests/test_eval_bootstrap.py checks this against scoring every resample afresh).
    """
    frames = list(truth.annotated)
    out = np.full(resamples, np.nan)
    data = _coco_input(truth, predictions, classes)
    if not frames or not data.counted:
        return out
    has_gt = {i: False for i in frames}
    for a in data.anns:
        if not a["iscrowd"]:
            has_gt[a["image_id"]] = True
    ev = _evaluated(data, max_dets) if data.dets else None
    if ev is not None:
        matched = list(ev.evalImgs)  # [class][area range][image], images in ev's (sorted) order
        position = {img: n for n, img in enumerate(ev._paramsEval.imgIds)}
        n_images, n_areas = len(ev._paramsEval.imgIds), len(ev._paramsEval.areaRng)
    rng = np.random.default_rng(seed)
    for r in range(resamples):
        picks = [int(i) for i in rng.choice(frames, size=len(frames), replace=True)]
        if not any(has_gt[i] for i in picks):
            continue
        if ev is None:  # no detections at all: every counted object is missed
            out[r] = 0.0
            continue
        ev.evalImgs = [matched[(k * n_areas + a) * n_images + position[i]]
                       for k in range(len(data.counted)) for a in range(n_areas) for i in picks]
        ev.params.imgIds = ev._paramsEval.imgIds = list(range(len(picks)))
        out[r] = _mean_valid(_precision(ev)[0])
    return out


def map50_interval(
    truth: GroundTruth,
    predictions: Mapping[int, Detections],
    classes: Sequence[int] | None,
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
    max_dets: int = 300,
) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of :func:`map50_resamples`: how much of a difference
    between two points could come from which frames happened to be evaluated.  Resamples without
    a counted object are left out; (NaN, NaN) when none has one."""
    values = map50_resamples(truth, predictions, classes, resamples, seed, max_dets)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
