"""mAP of one detector's output against reference detections (pycocotools).

Used for the agreement of ``vcodec-det`` with YOLOX-Nano: the teacher's
detections above a confidence threshold are the "ground truth", the other
detector's detections (with a low score threshold) are ranked against them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from vcodec.detection.base import COCO80, Detections
from vcodec.errors import InputError

__all__ = ["map_against"]


def map_against(
    reference: Sequence[Detections],
    predictions: Sequence[Detections],
    classes: Sequence[int] | None = None,
    reference_min_score: float = 0.3,
) -> dict[str, float]:
    """COCO mAP@0.5 and mAP@[.5:.95] of ``predictions`` with ``reference`` as ground truth.

    Both are per-picture lists in the same order.  ``classes`` (COCO80 ids)
    restricts both sides.  Returns ``{"map50": ..., "map": ..., "num_ref": ..., "num_pred": ...}``;
    mAP is NaN when the reference has no objects.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(reference) != len(predictions):
        raise InputError(f"map_against: {len(reference)} reference pictures but {len(predictions)} predicted")
    keep = None if classes is None else list(classes)
    images, dets = [], []
    anns: list[dict[str, Any]] = []
    for i, (ref, pred) in enumerate(zip(reference, predictions, strict=True)):
        images.append({"id": i, "width": max(ref.image_width, 1), "height": max(ref.image_height, 1)})
        r = ref.filter(reference_min_score, keep)
        for b, c in zip(r.boxes, r.class_ids, strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({
                "id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h,
            })
        p = pred.filter(0.0, keep)
        for b, s, c in zip(p.boxes, p.scores, p.class_ids, strict=True):
            dets.append({
                "image_id": i, "category_id": int(c) + 1, "score": float(s),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            })
    if not anns:
        return {"map50": float("nan"), "map": float("nan"), "num_ref": 0, "num_pred": len(dets)}
    cats = [{"id": c + 1, "name": COCO80[c]} for c in (keep if keep is not None else range(80))]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": cats}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            return {"map50": 0.0, "map": 0.0, "num_ref": len(anns), "num_pred": 0}
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = sorted({a["category_id"] for a in anns})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=float)
    return {"map50": float(stats[1]), "map": float(stats[0]), "num_ref": len(anns), "num_pred": len(dets)}
