"""Scoring: decoded pictures against the input (quality) and stored detections against the truth.

Coded points (``points/<id>.json``) keep per-frame detections; every run scores them again
(mAP, MOTA/IDF1) into :class:`~vcodec.eval.points.EvalPoint` rows, so a new ground truth never
re-encodes anything.  The derived rows (``x265@N``, simulcast) are built here from scored ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vcodec.errors import InputError
from vcodec.eval.config import EvalConfig
from vcodec.eval.detection import detection_map, map50_interval
from vcodec.eval.groundtruth import GroundTruth
from vcodec.eval.points import EvalPoint, dets_from_json, fmt_q
from vcodec.eval.quality import QualityAccumulator
from vcodec.eval.tracking import mot_metrics, track_detections

__all__ = ["anchor_size_system"]

#: what a coded point carries over to its scored row as it is
_CARRIED = (
    "base_quality", "qp", "kbps_base", "kbps_enh", "kbps_total", "kbps_stream", "encode_s", "decode_s"
)
_DETECTION_METRICS = frozenset({"map50", "map50_low", "map50_high", "map", "mota", "idf1"})
#: measured only with ``--bootstrap N``
_INTERVAL = frozenset({"map50_low", "map50_high"})


def _align(refs: list[Any], decoded: dict[int, Any], what: str) -> dict[int, Any]:
    """Decoded items keyed by the INPUT's frame indexes (streams count from 0 whatever --start was)."""
    if len(decoded) != len(refs):
        raise InputError(f"{what}: {len(decoded)} frames decoded for {len(refs)} coded")
    return {ref.index: decoded[k] for ref, k in zip(refs, sorted(decoded), strict=True)}


def _renumber(frames: dict[int, Any]) -> dict[int, Any]:
    return {i: f.copy(index=i) for i, f in frames.items()}


def _quality(refs: list[Any], tests: dict[int, Any]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Sequence means and rounded per-frame values of PSNR-Y, PSNR-YUV and MS-SSIM."""
    acc = QualityAccumulator()
    for ref in refs:
        if ref.index not in tests:
            raise InputError(f"decoded stream lacks frame {ref.index}")
        acc.add(ref, tests[ref.index])
    return acc.means(), {k: [round(v, 4) for v in vals] for k, vals in acc.values.items()}


def _plain(v: Any) -> Any:
    """numpy scalars as Python numbers (EvalPoint holds what JSON holds)."""
    return v.item() if isinstance(v, np.generic) else v


def _score(
    point: Mapping[str, Any], truth: GroundTruth, gt_tracks: dict[int, Any], cfg: EvalConfig,
    classes: Sequence[int] | None = None,
) -> EvalPoint:
    """A coded point's row: its rates, quality and timings, its detections scored against ``truth``
    (mAP over ``classes``, None = every class; :func:`vcodec.eval.detection.scored_classes`)."""
    values: dict[str, Any] = {k: _plain(point.get(k)) for k in _CARRIED}
    q = point.get("quality") or {}
    for k in ("psnr_y", "psnr_yuv", "ms_ssim"):
        values[k] = _plain(q.get(k))
    unmeasured: set[str] = set()
    for key, col in (("detections", "map50"), ("detections_full", "map50_full")):
        rows = point.get(key)
        if not rows:  # no detections to score: the metrics are not measured (not merely undefined)
            unmeasured |= _DETECTION_METRICS if key == "detections" else {col}
            continue
        dets = dets_from_json(rows)
        m = detection_map(truth, dets, classes)
        values[col] = _plain(m["map50"])
        if key == "detections":
            values["map"] = _plain(m["map"])
            if cfg.bootstrap:
                low, high = map50_interval(truth, dets, classes, cfg.bootstrap)
                values["map50_low"], values["map50_high"] = _plain(low), _plain(high)
            else:
                unmeasured |= _INTERVAL
            t = mot_metrics(gt_tracks, track_detections(dets.items(), min_score=cfg.track_min_score))
            values["mota"], values["idf1"] = _plain(t["mota"]), _plain(t["idf1"])
    return EvalPoint(
        id=point["id"],
        system=point["system"],
        frames=len(truth.annotated),
        unmeasured=frozenset(unmeasured),
        **values,
    )


def anchor_size_system(anchor: str, size: int) -> str:
    """The name of an anchor scored with its detector at a long side of ``size`` (``x265@416``)."""
    return f"{anchor}@{size}"


def _anchor_size_rows(
    cfg: EvalConfig, stored: Mapping[str, Mapping[str, Any]], truth: GroundTruth, gt_tracks: dict[int, Any],
    classes: Sequence[int] | None = None,
) -> list[EvalPoint]:
    """The labelled ``x265@N`` rows: each anchor point's rate and quality, its detections at N."""
    if not cfg.anchor_size:
        return []
    rows = []
    for a in cfg.anchors:
        name = anchor_size_system(a, cfg.anchor_size)
        for qp in cfg.anchor_qps:
            p = stored[f"{a}_qp{qp}"]
            alt = {**p, "id": f"{name}_qp{qp}", "system": name, "detections": p["detections_anchor_size"]}
            rows.append(_score(alt, truth, gt_tracks, cfg, classes))
    return rows


def _simulcast(rows: Sequence[EvalPoint]) -> list[EvalPoint]:
    """Base layer + independent x265 stream: rates add, mAP from the base, quality from x265."""
    out = []
    bases = [r for r in rows if r.system == "vcodec-base"]
    x265 = [r for r in rows if r.system == "x265"]
    for b in bases:
        for a in x265:
            if b.base_quality is None or b.kbps_base is None or a.kbps_total is None:
                raise InputError(f"cannot pair {b.id} with {a.id}: a base quality or rate is missing")
            out.append(
                EvalPoint(
                    id=f"simulcast_q{fmt_q(b.base_quality)}_qp{a.qp}",
                    system="simulcast",
                    base_quality=b.base_quality,
                    qp=a.qp,
                    frames=a.frames,
                    kbps_base=b.kbps_base,
                    kbps_enh=a.kbps_total,
                    kbps_total=b.kbps_base + a.kbps_total,
                    map50=b.map50,
                    map50_low=b.map50_low,
                    map50_high=b.map50_high,
                    map=b.map,
                    mota=b.mota,
                    idf1=b.idf1,
                    map50_full=a.map50,
                    psnr_y=a.psnr_y,
                    psnr_yuv=a.psnr_yuv,
                    ms_ssim=a.ms_ssim,
                    # derived: no stream of its own to time; the mAP interval is the base point's
                    unmeasured=(frozenset({"kbps_stream", "encode_s", "decode_s"})
                                | (_INTERVAL & b.unmeasured)),
                )
            )
    return out
