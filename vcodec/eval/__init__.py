"""Evaluation: rate against detection accuracy, tracking and picture quality, beside conventional codecs.

* :mod:`vcodec.eval.groundtruth` -- ground-truth readers (SFU-HW-Objects/Tracks,
  MOTChallenge, COCO) and pseudo ground truth; :mod:`vcodec.eval.classmap` the class maps;
* :mod:`vcodec.eval.detection` -- mAP@0.5 and mAP@[.5:.95] (pycocotools);
* :mod:`vcodec.eval.tracking` -- IoU/Kalman tracker, MOTA and IDF1 (motmetrics);
* :mod:`vcodec.eval.quality` -- PSNR-Y, PSNR-YUV (6:1:1), MS-SSIM;
* :mod:`vcodec.eval.bdrate` -- Bjontegaard BD-rate (cubic and PCHIP);
* :mod:`vcodec.eval.runner` -- the ``vcodec eval`` driver over :mod:`~vcodec.eval.config`,
  :mod:`~vcodec.eval.units` (work units), :mod:`~vcodec.eval.scoring`, :mod:`~vcodec.eval.curves`
  (BD entries), :mod:`~vcodec.eval.provenance` and :mod:`~vcodec.eval.output` (atomic files);
* :mod:`vcodec.eval.points` -- the typed results: :class:`EvalPoint` (a row of results.json),
  :class:`BDEntry`, :class:`EvalResults`;
* :mod:`vcodec.eval.bench` -- ``vcodec bench``.

See docs/EVAL.md.
"""

from vcodec.eval.bdrate import BDRateError, bd_quality, bd_rate
from vcodec.eval.classmap import from_coco80, to_coco80
from vcodec.eval.detection import detection_map
from vcodec.eval.groundtruth import (
    GT_FORMATS,
    FrameTruth,
    GroundTruth,
    load_ground_truth,
    pseudo_ground_truth,
    read_coco,
    read_mot,
    read_sfu,
)
from vcodec.eval.points import BDEntry, EvalPoint, EvalResults
from vcodec.eval.quality import QualityAccumulator, frame_quality, plane_psnr
from vcodec.eval.tracking import Tracker, ground_truth_tracks, mot_metrics, track_detections

__all__ = [
    "BDRateError",
    "bd_rate",
    "bd_quality",
    "to_coco80",
    "from_coco80",
    "detection_map",
    "GT_FORMATS",
    "FrameTruth",
    "GroundTruth",
    "load_ground_truth",
    "pseudo_ground_truth",
    "read_coco",
    "read_mot",
    "read_sfu",
    "QualityAccumulator",
    "frame_quality",
    "plane_psnr",
    "Tracker",
    "ground_truth_tracks",
    "mot_metrics",
    "track_detections",
    "BDEntry",
    "EvalPoint",
    "EvalResults",
]
