"""The ``vcodec eval`` driver: every system on the same frames, one results folder.

Systems (each a set of *points*):

* ``reference``: the detector on the uncompressed frames (no rate; the upper
  bound of detection accuracy, trivially perfect against pseudo ground truth);
* ``vcodec-base``: the base layer alone at each base quality: the detector's
  back end on T(y_hat) decoded from layer 0 (no pixels), rate = layer-0 bytes;
  quality figures are those of the coarse picture x_base;
* ``vcodec-full``: the full decode at each (base quality, enhancement QP),
  rate = the whole stream; the detector also runs on the full pictures;
* ``x265`` / ``x264``: single-layer coding of the input at each QP, the
  detector on the decoded pixels (same detector, same pre-processing as the
  reference);
* ``x265@N`` / ``x264@N`` (with ``anchor_size=N``): the same anchor points with
  the detector at a long side of N instead of the working size (labelled, beside);
* ``simulcast``: the base layer plus an independent single-layer x265 stream
  of the full video (derived: rates add, mAP from the base, quality from x265).

Every coded point is stored in ``points/<id>.json`` (settings, layer bytes and
kbit/s, per-frame detections, quality, timings, a cache key) and
``points/<id>.csv`` (one row of metrics); a rerun skips points whose cache key
matches.  Metrics (mAP, MOTA/IDF1) are recomputed from the stored detections on
every run, so changing the ground truth does not re-encode anything.  Work units
(one per base quality, one per anchor QP) run in ``jobs`` processes.

Geometry: the detector on pixels (reference, anchors, full decode) works at the
base layer's working geometry (:mod:`vcodec.eval.geometry`): the long side of
``base_size`` or the base model's ``max_long_side``, frames above it scaled down,
padded as the base layer pads, so that every system is scored by the same detector.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vcodec.errors import ConfigError, InputError, OutputError
from vcodec.eval.bdrate import bd_rate_result
from vcodec.eval.detection import detection_map
from vcodec.eval.geometry import WorkingSize, detect_at, working_size
from vcodec.eval.groundtruth import GroundTruth, load_ground_truth, pseudo_ground_truth
from vcodec.eval.quality import QualityAccumulator
from vcodec.eval.tracking import ground_truth_tracks, mot_metrics, track_detections
from vcodec.hashing import file_sha256 as _sha256_file

__all__ = ["EvalConfig", "run_eval", "bd_entries", "ANCHOR_NAMES", "METRIC_COLUMNS"]

#: single-layer anchor system name -> encoder
ANCHOR_NAMES: dict[str, str] = {"x265": "libx265", "x264": "libx264"}
#: columns of results.csv / points/*.csv
METRIC_COLUMNS = [
    "id",
    "system",
    "base_quality",
    "qp",
    "frames",
    "kbps_base",
    "kbps_enh",
    "kbps_total",
    "kbps_stream",
    "map50",
    "map",
    "map50_full",
    "mota",
    "idf1",
    "psnr_y",
    "psnr_yuv",
    "ms_ssim",
    "encode_s",
    "decode_s",
]
#: part of every point's cache key: bump it when a code change alters what a point measures
#: (2: residuals coded without psy-rd; anchor keys no longer carry the base model;
#: 3: the detector on pixels works at the base layer's working geometry, not 416/native)
POINT_VERSION = 3


@dataclass
class EvalConfig:
    """Settings of one evaluation run (see ``vcodec eval --help``)."""

    input: str
    output: str
    frames: int | None = None
    start: int = 0
    size: tuple[int, int] | None = None
    gt: str | None = None
    gt_format: str | None = None
    gt_stem: str | None = None
    detector: str | None = None
    detector_weights: str | None = None
    base_model: str | None = None
    #: the base layer's working size (long side); None = the base model's max_long_side
    base_size: int | None = None
    #: also score the anchors with the detector at this long side (labelled ``x265@N``)
    anchor_size: int | None = None
    base_qualities: list[float] = field(default_factory=lambda: [0.15, 0.4, 0.65, 0.9])
    enh_qps: list[int] = field(default_factory=lambda: [27, 32, 37, 42])
    anchor_qps: list[int] = field(default_factory=lambda: [22, 27, 32, 37, 42, 47])
    anchors: list[str] = field(default_factory=lambda: ["x265", "x264"])
    enh_codec: str = "libx265"
    #: vcodec-full: per GOP ("auto", the codec's default), residual ("on"), full frames ("off")
    inter_layer: str = "auto"
    preset: str = "medium"
    intra_period: int | None = None
    gt_min_score: float = 0.3
    score_threshold: float = 0.01
    track_min_score: float = 0.3
    full_detect: bool = True
    jobs: int = 1
    threads: int = 1
    progress: bool = True
    #: run the work units as Ray tasks: on a local Ray with this many workers, or on the cluster at
    #: ``ray_address`` (vcodec.cluster.ray_backend); results and cache are the same as serial
    workers: int | None = None
    ray_address: str | None = None

    def check(self) -> None:
        if not self.base_qualities and not self.anchors:
            raise ConfigError("nothing to evaluate: give base qualities or anchors")
        for q in self.base_qualities:
            if not 0.0 <= q <= 1.0:
                raise ConfigError(f"base quality {q} is out of range; use numbers in [0, 1]")
        for qp in [*self.enh_qps, *self.anchor_qps]:
            if not 0 <= qp <= 51:
                raise ConfigError(f"QP {qp} is out of range; x264/x265 QPs are 0..51")
        for a in self.anchors:
            if a not in ANCHOR_NAMES:
                raise ConfigError(f"unknown anchor {a!r}; use {', '.join(ANCHOR_NAMES)}")
        if self.inter_layer not in ("on", "off", "auto"):
            raise ConfigError(f"inter_layer {self.inter_layer!r} is invalid; use on, off or auto")
        if self.workers is not None or self.ray_address is not None:
            from vcodec.cluster.ray_backend import require_ray

            require_ray()  # usage error (exit 2) with how to install, before any work
            if self.jobs > 1:
                raise ConfigError("give --jobs (processes on this machine) or --workers/--ray (Ray), not both")
            if self.workers is not None and self.ray_address is not None:
                raise ConfigError("give --workers N (local Ray) or --ray ADDRESS (a cluster), not both")
            if self.workers is not None and self.workers < 1:
                raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.jobs < 1 or self.threads < 1:
            raise ConfigError(f"jobs and threads must be >= 1, got {self.jobs} and {self.threads}")
        for name, v in (("base_size", self.base_size), ("anchor_size", self.anchor_size)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 64 <= v <= 0xFFFF):
                raise ConfigError(
                    f"{name} {v!r} is invalid; use a long side in pixels of at least 64 "
                    "(e.g. 416, 640 or 832)"
                )
        if self.frames is not None and self.frames <= 0:
            raise ConfigError(f"frames must be positive, got {self.frames}")
        if not 0.0 <= self.score_threshold <= self.gt_min_score <= 1.0:
            raise ConfigError(
                "need 0 <= score_threshold <= gt_min_score <= 1 (predictions are ranked "
                "below the pseudo-ground-truth threshold)"
            )


# -- helpers shared by the main process and workers ---------------------------------
def _fmt_q(q: float) -> str:
    return f"{q:.2f}"


def _kbps(nbytes: int, frames: int, fps: float) -> float:
    return nbytes * 8.0 * fps / frames / 1000.0 if frames else float("nan")


def _dets_to_json(items: Iterable[tuple[int, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "i": int(i),
            "b": np.round(d.boxes, 2).tolist(),
            "s": np.round(d.scores, 5).tolist(),
            "c": d.class_ids.tolist(),
            "w": d.image_width,
            "h": d.image_height,
        }
        for i, d in items
    ]


def _dets_from_json(rows: list[dict[str, Any]]) -> dict[int, Any]:
    from vcodec.detection import Detections

    return {
        int(r["i"]): Detections(
            np.asarray(r["b"], np.float32).reshape(-1, 4), r["s"], r["c"], int(r["w"]), int(r["h"])
        )
        for r in rows
    }


class _Context:
    """Per-process state: the frames, the detector and the base model (loaded once)."""

    def __init__(self, cfg: EvalConfig) -> None:
        import torch

        from vcodec.io import open_video

        torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        with open_video(cfg.input, size=cfg.size, start=cfg.start, frames=cfg.frames) as reader:
            self.frames = list(reader)
            self.info = reader.info
        if not self.frames:
            raise InputError(f"{cfg.input}: no frames to evaluate")
        self.info.num_frames = len(self.frames)
        long_side = max(self.info.width, self.info.height)
        if cfg.base_size is not None and cfg.base_size > long_side:
            raise ConfigError(
                f"base size {cfg.base_size} is larger than the input's long side "
                f"({self.info.width}x{self.info.height}); use at most {long_side}"
            )
        self._detector: Any = None
        self._working: WorkingSize | None = None

    @property
    def working(self) -> WorkingSize:
        """The base layer's working size: the geometry of every detection on pixels."""
        if self._working is None:
            self._working = working_size(
                self.cfg.base_model, self.cfg.base_size, required=bool(self.cfg.base_qualities)
            )
        return self._working

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from vcodec.detection import DEFAULT_DETECTOR, get_detector

            name = self.cfg.detector or DEFAULT_DETECTOR
            self._detector = get_detector(
                name, self.cfg.detector_weights, score_threshold=self.cfg.score_threshold
            )
        return self._detector

    def detect_pixels(self, frames: Iterable[Any], long_side: int | None = None) -> list[tuple[int, Any]]:
        """The detector on pictures at the working geometry (or the same rule at ``long_side``)."""
        size = self.working
        if long_side is not None:
            size = WorkingSize(long_side, size.multiple, f"anchor size {long_side}")
        return list(detect_at(self.detector, frames, size))


_CONTEXT: _Context | None = None


def _context(cfg: EvalConfig) -> _Context:
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT.cfg != cfg:
        _CONTEXT = _Context(cfg)
    return _CONTEXT


def _align(refs: list[Any], decoded: dict[int, Any], what: str) -> dict[int, Any]:
    """Decoded items keyed by the INPUT's frame indexes (streams count from 0 whatever --start was)."""
    if len(decoded) != len(refs):
        raise InputError(f"{what}: {len(decoded)} frames decoded for {len(refs)} coded")
    return {ref.index: decoded[k] for ref, k in zip(refs, sorted(decoded))}


def _renumber(frames: dict[int, Any]) -> dict[int, Any]:
    return {i: f.copy(index=i) for i, f in frames.items()}


def _quality(refs: list[Any], tests: dict[int, Any]) -> tuple[dict[str, float], dict[str, list[float]]]:
    acc = QualityAccumulator()
    for ref in refs:
        if ref.index not in tests:
            raise InputError(f"decoded stream lacks frame {ref.index}")
        acc.add(ref, tests[ref.index])
    return acc.means(), {k: [round(v, 4) for v in vals] for k, vals in acc.values.items()}


# -- work units (run in worker processes) ---------------------------------------------
def _vcodec_unit(cfg: EvalConfig, q: float, qps: list[int], need_base: bool) -> list[dict[str, Any]]:
    """Code at base quality ``q`` with each enhancement QP; the base point from the first stream."""
    from vcodec.codec import Decoder, Encoder

    ctx = _context(cfg)
    n, fps = len(ctx.frames), float(ctx.info.fps)
    out: list[dict[str, Any]] = []
    # base-only work still needs a stream: code the enhancement at the coarsest QP, then drop it
    todo = list(qps) if qps else [cfg.enh_qps[0] if cfg.enh_qps else 51]
    for k, qp in enumerate(todo):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        with Encoder(
            buf,
            ctx.info,
            base_model=cfg.base_model,
            base_quality=q,
            base_size=cfg.base_size,
            enh_codec=cfg.enh_codec,
            enh_qp=qp,
            preset=cfg.preset,
            intra_period=cfg.intra_period or 32,
            inter_layer={"on": True, "off": False}.get(cfg.inter_layer, "auto"),
        ) as enc:
            for f in ctx.frames:
                enc.encode(f)
        summary = enc.summary()
        enc_s = time.perf_counter() - t0
        stream = buf.getvalue()
        base_model = {"id": summary.base_model, "sha256": enc.base.sha256}
        if need_base and k == 0:
            t0 = time.perf_counter()
            with Decoder(stream, layers="base", detector=ctx.detector, base_model=cfg.base_model) as dec:
                dets = sorted(_align(ctx.frames, dict(dec.detections()), "base layer").items())
            det_s = time.perf_counter() - t0
            with Decoder(stream, layers="base", base_model=cfg.base_model) as dec:
                base_frames = _align(ctx.frames, {f.index: f for f in dec.frames()}, "base layer")
            mean, per = _quality(ctx.frames, base_frames)
            out.append(
                {
                    "id": f"vcodec-base_q{_fmt_q(q)}",
                    "system": "vcodec-base",
                    "base_quality": q,
                    "qp": None,
                    "bytes": {"base": summary.base_bytes},
                    "kbps_base": _kbps(summary.base_bytes, n, fps),
                    "kbps_total": _kbps(summary.base_bytes, n, fps),
                    "detections": _dets_to_json(dets),
                    "quality": mean,
                    "quality_per_frame": per,
                    "encode_s": enc_s,
                    "decode_s": det_s,
                    "settings": {
                        "base_model": base_model,
                        "base_quality": q,
                        "base_size": cfg.base_size,
                        "intra_period": cfg.intra_period or 32,
                        "note": "base-only decode + detector back end on T(y_hat); quality of x_base",
                    },
                }
            )
        if not qps:
            break
        t0 = time.perf_counter()
        with Decoder(stream, layers="all", base_model=cfg.base_model) as dec:
            full = _renumber(_align(ctx.frames, {f.index: f for f in dec.frames()}, "full decode"))
            enh_params = dict(dec.enh_config.params) if dec.enh_config is not None else {}
        dec_s = time.perf_counter() - t0
        mean, per = _quality(ctx.frames, full)
        full_dets = (
            _dets_to_json(ctx.detect_pixels(full[f.index] for f in ctx.frames)) if cfg.full_detect else []
        )
        out.append(
            {
                "id": f"vcodec-full_q{_fmt_q(q)}_qp{qp}",
                "system": "vcodec-full",
                "base_quality": q,
                "qp": qp,
                "bytes": {
                    "base": summary.base_bytes,
                    "enh": summary.enh_bytes,
                    "stream": summary.stream_bytes,
                },
                "kbps_base": _kbps(summary.base_bytes, n, fps),
                "kbps_enh": _kbps(summary.enh_bytes, n, fps),
                "kbps_total": _kbps(summary.base_bytes + summary.enh_bytes, n, fps),
                "kbps_stream": _kbps(summary.stream_bytes, n, fps),
                "detections_full": full_dets,
                "quality": mean,
                "quality_per_frame": per,
                "encode_s": enc_s,
                "decode_s": dec_s,
                "settings": {
                    "base_model": base_model,
                    "base_quality": q,
                    "enh_codec": cfg.enh_codec,
                    "enh_qp": qp,
                    "inter_layer": cfg.inter_layer,
                    "preset": cfg.preset,
                    "intra_period": cfg.intra_period or 32,
                    "enhancement_config": enh_params,
                },
            }
        )
    return out


def _anchor_unit(cfg: EvalConfig, name: str, qp: int) -> list[dict[str, Any]]:
    """Single-layer x265/x264 of the input at ``qp``; the detector on the decoded pixels."""
    from vcodec.enhancement import decode_sequence, encode_sequence, reconstruct

    ctx = _context(cfg)
    n, fps = len(ctx.frames), float(ctx.info.fps)
    codec = ANCHOR_NAMES[name]
    t0 = time.perf_counter()
    config, extradata, packets = encode_sequence(
        ctx.frames,
        None,
        codec=codec,
        qp=qp,
        preset=cfg.preset,
        intra_period=cfg.intra_period or 32,
        fps=ctx.info.fps,
    )
    enc_s = time.perf_counter() - t0
    nbytes = sum(len(p.data) for p in packets)
    t0 = time.perf_counter()
    decoded = {
        i: reconstruct(None, r, index=i) for i, r in decode_sequence(codec, config, extradata, packets)
    }
    dec_s = time.perf_counter() - t0
    by_pos = {
        f.index: decoded[k].copy(index=f.index, matrix=f.matrix) for f, k in zip(ctx.frames, sorted(decoded))
    }
    if len(by_pos) != len(ctx.frames):
        raise InputError(f"{name} at QP {qp}: {len(decoded)} frames decoded for {len(ctx.frames)} coded")
    mean, per = _quality(ctx.frames, by_pos)
    dets = ctx.detect_pixels(by_pos[f.index] for f in ctx.frames)
    extra: dict[str, Any] = {}
    if cfg.anchor_size:
        # the labelled anchor: the same pictures, the detector at another long side
        extra["detections_anchor_size"] = _dets_to_json(
            ctx.detect_pixels((by_pos[f.index] for f in ctx.frames), cfg.anchor_size)
        )
    return [
        {
            "id": f"{name}_qp{qp}",
            "system": name,
            "base_quality": None,
            "qp": qp,
            "bytes": {"total": nbytes},
            "kbps_total": _kbps(nbytes, n, fps),
            "detections": _dets_to_json(dets),
            "quality": mean,
            "quality_per_frame": per,
            "encode_s": enc_s,
            "decode_s": dec_s,
            "settings": {"encoder_config": config, "note": "single layer; detector on decoded pixels"},
            **extra,
        }
    ]


def _run_unit(cfg: EvalConfig, unit: dict[str, Any]) -> list[dict[str, Any]]:
    if unit["kind"] == "vcodec":
        return _vcodec_unit(cfg, unit["q"], unit["qps"], unit["need_base"])
    return _anchor_unit(cfg, unit["name"], unit["qp"])


def _run_unit_task(item: tuple[EvalConfig, dict[str, Any]]) -> list[dict[str, Any]]:
    return _run_unit(*item)


def _describe_unit(item: tuple[EvalConfig, dict[str, Any]]) -> str:
    u = item[1]
    what = f"vcodec q {_fmt_q(u['q'])}" if u["kind"] == "vcodec" else f"{u['name']} QP {u['qp']}"
    return f"eval work unit ({what}) of {item[0].input}"


# -- provenance ----------------------------------------------------------------------
def provenance(cfg: EvalConfig, detector: Any) -> dict[str, Any]:
    """Versions, weights hashes and settings every output records."""
    import av
    import torch

    from vcodec import __version__

    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:  # noqa: BLE001 - a missing distribution is just "unknown"
            return "unknown"

    det_sha = ""
    if cfg.detector_weights:
        det_sha = _sha256_file(cfg.detector_weights)
    else:
        from vcodec.detection import DEFAULT_DETECTOR
        from vcodec.detection.shipped import has_shipped_weights, shipped_weights

        # the weights that ship with vcodec for this detector (YOLOX-Nano by default)
        name = cfg.detector or DEFAULT_DETECTOR
        if has_shipped_weights(name):
            det_sha = shipped_weights(name).sha256
    encoders = {}
    for name in ("libx265", "libx264"):
        try:
            encoders[name] = av.codec.Codec(name, "w").long_name
        except Exception:  # noqa: BLE001 - an encoder absent from this build
            encoders[name] = "unavailable"
    settings = asdict(cfg)
    for how in ("progress", "workers", "ray_address"):  # how it ran, not what it computed
        settings.pop(how, None)
    return {
        "vcodec_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyav": av.__version__,
        "libavcodec": ".".join(str(v) for v in av.library_versions.get("libavcodec", ())),
        "encoders": encoders,
        "pycocotools": version("pycocotools"),
        "motmetrics": version("motmetrics"),
        "pytorch_msssim": version("pytorch-msssim"),
        "detector": {
            "name": detector.name,
            "weights": cfg.detector_weights or "shipped",
            "sha256": det_sha,
            "score_threshold": cfg.score_threshold,
        },
        "settings": settings,
    }


def _cache_key(
    cfg: EvalConfig,
    unit_point: dict[str, Any],
    input_sig: dict[str, Any],
    model_sig: str,
    det_sig: str,
    geometry: list[int] | None = None,
) -> str:
    """``geometry``: the working size's key (long side, multiple) every detection on pixels uses."""
    from vcodec import __version__

    d = {
        "v": POINT_VERSION,
        "base_size": cfg.base_size,
        "geometry": geometry,
        "vcodec": __version__,
        "input": input_sig,
        "frames": cfg.frames,
        "start": cfg.start,
        "detector": det_sig,
        "score": cfg.score_threshold,
        "model": model_sig,
        "preset": cfg.preset,
        "intra": cfg.intra_period,
        "enh_codec": cfg.enh_codec,
        "full_detect": cfg.full_detect,
        **unit_point,
    }
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:20]


# -- metrics on stored points ---------------------------------------------------------
def _score(
    point: dict[str, Any], truth: GroundTruth, gt_tracks: dict[int, Any], cfg: EvalConfig
) -> dict[str, Any]:
    row: dict[str, Any] = {
        k: point.get(k)
        for k in (
            "id",
            "system",
            "base_quality",
            "qp",
            "kbps_base",
            "kbps_enh",
            "kbps_total",
            "kbps_stream",
            "encode_s",
            "decode_s",
        )
    }
    row["frames"] = len(truth.annotated)
    q = point.get("quality") or {}
    for k in ("psnr_y", "psnr_yuv", "ms_ssim"):
        row[k] = q.get(k)
    for key, col in (("detections", "map50"), ("detections_full", "map50_full")):
        rows = point.get(key)
        if not rows:
            continue
        dets = _dets_from_json(rows)
        m = detection_map(truth, dets)
        row[col] = m["map50"]
        if key == "detections":
            row["map"] = m["map"]
            t = mot_metrics(gt_tracks, track_detections(dets.items(), min_score=cfg.track_min_score))
            row["mota"], row["idf1"] = t["mota"], t["idf1"]
    return row


def anchor_size_system(anchor: str, size: int) -> str:
    """The name of an anchor scored with its detector at a long side of ``size`` (``x265@416``)."""
    return f"{anchor}@{size}"


def _anchor_size_rows(
    cfg: EvalConfig, stored: dict[str, dict[str, Any]], truth: GroundTruth, gt_tracks: dict[int, Any]
) -> list[dict[str, Any]]:
    """The labelled ``x265@N`` rows: each anchor point's rate and quality, its detections at N."""
    if not cfg.anchor_size:
        return []
    rows = []
    for a in cfg.anchors:
        name = anchor_size_system(a, cfg.anchor_size)
        for qp in cfg.anchor_qps:
            p = stored[f"{a}_qp{qp}"]
            alt = {**p, "id": f"{name}_qp{qp}", "system": name, "detections": p["detections_anchor_size"]}
            rows.append(_score(alt, truth, gt_tracks, cfg))
    return rows


def _geometry_json(working: WorkingSize, width: int, height: int, anchor_size: int | None) -> dict[str, Any]:
    g = working.geometry(width, height)
    return {
        "long_side": working.long_side,
        "multiple": working.multiple,
        "source": working.source,
        "scaled": [g.coded_width, g.coded_height],
        "padded": [g.padded_width, g.padded_height],
        "description": working.describe(width, height),
        "anchor_size": anchor_size,
    }


def _simulcast(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Base layer + independent x265 stream: rates add, mAP from the base, quality from x265."""
    out = []
    bases = [r for r in rows if r["system"] == "vcodec-base"]
    x265 = [r for r in rows if r["system"] == "x265"]
    for b in bases:
        for a in x265:
            out.append(
                {
                    "id": f"simulcast_q{_fmt_q(b['base_quality'])}_qp{a['qp']}",
                    "system": "simulcast",
                    "base_quality": b["base_quality"],
                    "qp": a["qp"],
                    "frames": a["frames"],
                    "kbps_base": b["kbps_base"],
                    "kbps_enh": a["kbps_total"],
                    "kbps_total": b["kbps_base"] + a["kbps_total"],
                    "map50": b.get("map50"),
                    "map": b.get("map"),
                    "mota": b.get("mota"),
                    "idf1": b.get("idf1"),
                    "map50_full": a.get("map50"),
                    "psnr_y": a["psnr_y"],
                    "psnr_yuv": a["psnr_yuv"],
                    "ms_ssim": a["ms_ssim"],
                }
            )
    return out


def _curve(rows: list[dict[str, Any]], y: str, rate: str = "kbps_total") -> tuple[list[float], list[float]]:
    """A system's measured (rate, quality) points, sorted by rate; NaN/missing values left out.

    Dominated points stay in: :func:`bd_rate_result` computes on the upper envelope and reports
    which points it dropped (detection accuracy saturates or wobbles at low QPs)."""
    pts = sorted(
        (r[rate], r[y])
        for r in rows
        if r.get(y) is not None and r.get(rate) is not None and math.isfinite(r[y]) and math.isfinite(r[rate])
    )
    return [p[0] for p in pts], [p[1] for p in pts]


def bd_entries(rows: list[dict[str, Any]], qualities: list[float] | None = None) -> list[dict[str, Any]]:
    """The BD-rate entries of results.json from its points alone (JSON-clean: no NaN).

    ``qualities`` defaults to the base qualities of the vcodec-full points; reports rebuilt from a
    stored results.json use this so that their BD columns follow the current BD rules."""
    if qualities is None:
        qualities = sorted({r["base_quality"] for r in rows if r.get("system") == "vcodec-full"})
    return [{k: _clean(v) for k, v in e.items()} for e in _bd_entries(rows, qualities)]


def _bd_entries(rows: list[dict[str, Any]], qualities: list[float]) -> list[dict[str, Any]]:
    """BD-rate of the base layer vs each anchor (mAP), of the full decode vs x265 and vs simulcast,
    and of simulcast vs x265 (PSNR, MS-SSIM)."""
    entries = []

    def add(
        test: str,
        anchor: str,
        metric: str,
        t_rows: list[dict[str, Any]],
        a_rows: list[dict[str, Any]],
        t_rate: str = "kbps_total",
    ) -> None:
        tr, tq = _curve(t_rows, metric, t_rate)
        ar, aq = _curve(a_rows, metric)
        for method in ("pchip", "cubic"):
            res = bd_rate_result(ar, aq, tr, tq, method)
            # "points": how many of each curve's points the number rests on (test, anchor)
            used = [len(tr) - len(res.dropped_test), len(ar) - len(res.dropped_anchor)]
            entries.append(
                {"test": test, "anchor": anchor, "metric": metric, "points": used, **res.to_dict()}
            )

    by = {s: [r for r in rows if r["system"] == s] for s in {r["system"] for r in rows}}
    # the anchors at the working geometry, then any labelled x265@N (detector at another size)
    sized = sorted(s for s in by if s.split("@")[0] in ANCHOR_NAMES and "@" in s)
    for a in [*ANCHOR_NAMES, *sized]:
        if a in by and "vcodec-base" in by:
            for metric in ("map50", "map"):
                add("vcodec-base", a, metric, by["vcodec-base"], by[a], "kbps_base")
    for q in qualities:
        full = [r for r in by.get("vcodec-full", []) if r["base_quality"] == q]
        sim = [r for r in by.get("simulcast", []) if r["base_quality"] == q]
        if not full:
            continue
        for metric in ("psnr_y", "ms_ssim"):
            if "x265" in by:
                add(f"vcodec-full q={_fmt_q(q)}", "x265", metric, full, by["x265"])
            if sim:
                add(f"vcodec-full q={_fmt_q(q)}", f"simulcast q={_fmt_q(q)}", metric, full, sim)
            if sim and "x265" in by:
                # what carrying the base layer costs viewers when layer 1 codes full frames
                # (simulcast, or vcodec with --inter-layer off, in one stream)
                add(f"simulcast q={_fmt_q(q)}", "x265", metric, sim, by["x265"])
    return entries


# -- the driver ----------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Fraction):
        return str(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    k: ("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]))
                    for k in METRIC_COLUMNS
                }
            )


def run_eval(cfg: EvalConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) an evaluation; returns the content of ``results.json``."""
    cfg.check()
    say = log or (lambda m: print(m, file=sys.stderr))
    out = Path(cfg.output)
    try:
        (out / "points").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create results folder {out}: {exc.strerror or exc}") from None
    ctx = _context(cfg)
    if cfg.detector is None:
        from vcodec.codec.base_layer import get_base_factory, kind_for_mode

        if cfg.base_qualities:
            base = get_base_factory(kind_for_mode("learned")).for_encoding(cfg.base_model)
            cfg.detector = base.detector_name
            ctx.cfg = cfg
    detector = ctx.detector
    n, fps = len(ctx.frames), float(ctx.info.fps)
    if cfg.intra_period is None:
        # MPEG machine-vision test conditions: 32 at <= 30 fps, 64 at 50/60 fps
        cfg.intra_period = 64 if fps > 35 else 32
        ctx.cfg = cfg
    prov = provenance(cfg, detector)
    _write_json(out / "provenance.json", prov)

    # reference detections on the uncompressed frames (also the pseudo ground truth)
    ref_path = out / "reference.json"
    det_sig = f"{detector.name}:{prov['detector']['sha256']}"
    in_path = Path(cfg.input)
    input_sig = {
        "path": str(in_path.resolve()),
        "size": in_path.stat().st_size if in_path.is_file() else 0,
        "mtime": int(in_path.stat().st_mtime) if in_path.exists() else 0,
    }
    working = ctx.working
    geometry = working.key()
    say(
        f"vcodec eval: the detector on pixels works at the base layer's geometry: "
        f"{working.describe(ctx.info.width, ctx.info.height)}"
    )
    ref_key = _cache_key(cfg, {"system": "reference"}, input_sig, "", det_sig, geometry)
    ref = json.loads(ref_path.read_text()) if ref_path.is_file() else {}
    if ref.get("key") != ref_key:
        say(f"vcodec eval: reference detections ({detector.name}) on {n} uncompressed frames")
        t0 = time.perf_counter()
        ref = {
            "key": ref_key,
            "id": "reference",
            "system": "reference",
            "detections": _dets_to_json(ctx.detect_pixels(ctx.frames)),
            "decode_s": time.perf_counter() - t0,
        }
        _write_json(ref_path, ref)
    ref_dets = _dets_from_json(ref["detections"])

    if cfg.gt:
        truth = load_ground_truth(cfg.gt, cfg.gt_format, ctx.info.width, ctx.info.height, cfg.gt_stem)
        truth = truth.restrict(f.index for f in ctx.frames)
        if not truth.annotated:
            raise InputError(
                f"ground truth {cfg.gt} has no frame among the {n} evaluated "
                f"(frames {ctx.frames[0].index}..{ctx.frames[-1].index}); check --start/--frames"
            )
    else:
        truth = pseudo_ground_truth(
            sorted(ref_dets.items()),
            ctx.info.width,
            ctx.info.height,
            f"{detector.name} (weights sha256 {prov['detector']['sha256'][:12] or 'n/a'})",
            cfg.gt_min_score,
        )
    _write_json(out / "groundtruth.json", truth.to_json())
    gt_tracks, ids_assigned = ground_truth_tracks(truth)
    gt_note = truth.describe() + (
        "; track ids of the ground truth assigned by the IoU/Kalman tracker" if ids_assigned else ""
    )
    say(f"vcodec eval: {gt_note}")

    # model signature for cache keys: a change of weights must invalidate vcodec points
    model_sig = ""
    if cfg.base_qualities:
        from vcodec.codec.base_layer import get_base_factory, kind_for_mode

        model_sig = get_base_factory(kind_for_mode("learned")).for_encoding(cfg.base_model).sha256

    # plan the work: skip points whose stored key matches
    units: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    stored: dict[str, dict[str, Any]] = {}

    def cached(pid: str, spec: dict[str, Any], uses_model: bool = True) -> bool:
        # anchors never touch the base model: retraining it must not recompute them
        keys[pid] = _cache_key(cfg, spec, input_sig, model_sig if uses_model else "", det_sig, geometry)
        p = out / "points" / f"{pid}.json"
        if p.is_file():
            try:
                d = json.loads(p.read_text())
            except ValueError:
                return False
            if d.get("key") == keys[pid]:
                stored[pid] = d
                return True
        return False

    for q in cfg.base_qualities:
        base_done = cached(f"vcodec-base_q{_fmt_q(q)}", {"system": "vcodec-base", "q": q})
        qps = [
            qp
            for qp in cfg.enh_qps
            if not cached(
                f"vcodec-full_q{_fmt_q(q)}_qp{qp}",
                # "auto" decided on frame 0 alone before issue 15: its old points must not be reused
                {"system": "vcodec-full", "q": q, "qp": qp,
                 "inter_layer": "auto-per-gop" if cfg.inter_layer == "auto" else cfg.inter_layer},
            )
        ]
        if not base_done or qps:
            units.append({"kind": "vcodec", "q": q, "qps": qps, "need_base": not base_done})
    for a in cfg.anchors:
        for qp in cfg.anchor_qps:
            spec = {"system": a, "qp": qp, **({"anchor_size": cfg.anchor_size} if cfg.anchor_size else {})}
            if not cached(f"{a}_qp{qp}", spec, uses_model=False):
                units.append({"kind": "anchor", "name": a, "qp": qp})
    total_points = len(cfg.base_qualities) * (1 + len(cfg.enh_qps)) + len(cfg.anchors) * len(cfg.anchor_qps)
    say(
        f"vcodec eval: {total_points} points, {len(stored)} already computed, {len(units)} work units "
        + (f"as Ray tasks ({f'{cfg.workers} local workers' if cfg.workers else cfg.ray_address})"
           if cfg.workers is not None or cfg.ray_address is not None
           else f"in {min(cfg.jobs, max(len(units), 1))} process(es)")
    )

    def keep(points: list[dict[str, Any]]) -> None:
        for p in points:
            p["key"] = keys[p["id"]]
            p["frames"] = n
            p["provenance"] = {k: prov[k] for k in ("vcodec_version", "libavcodec", "encoders", "detector")}
            _write_json(out / "points" / f"{p['id']}.json", p)
            stored[p["id"]] = p

    from tqdm import tqdm

    bar = tqdm(total=len(units), desc="vcodec eval", unit="unit", disable=not cfg.progress, file=sys.stderr)
    if (cfg.workers is not None or cfg.ray_address is not None) and units:
        from vcodec.cluster.ray_backend import RayExecutor

        # each worker reads the input and loads the models once (_context), as --jobs processes do
        with RayExecutor(cfg.workers, cfg.ray_address) as ex:
            for _, points in ex.map_unordered(_run_unit_task, [(cfg, u) for u in units], _describe_unit):
                keep(points)  # type: ignore[arg-type]
                bar.update(1)
    elif cfg.jobs > 1 and len(units) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: torch and libav state must not be forked mid-flight
        with ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_run_unit, cfg, u) for u in units]
            for fut in as_completed(futures):
                keep(fut.result())
                bar.update(1)
    else:
        for u in units:
            keep(_run_unit(cfg, u))
            bar.update(1)
    bar.close()

    # score every point from its stored detections (cheap) and write the tables
    rows = []
    ref_row = _score({**ref, "system": "reference"}, truth, gt_tracks, cfg)
    rows.append(ref_row)
    order = [f"vcodec-base_q{_fmt_q(q)}" for q in cfg.base_qualities]
    order += [f"vcodec-full_q{_fmt_q(q)}_qp{qp}" for q in cfg.base_qualities for qp in cfg.enh_qps]
    order += [f"{a}_qp{qp}" for a in cfg.anchors for qp in cfg.anchor_qps]
    for pid in order:
        row = _score(stored[pid], truth, gt_tracks, cfg)
        rows.append(row)
        _write_csv(out / "points" / f"{pid}.csv", [row])
    rows += _anchor_size_rows(cfg, stored, truth, gt_tracks)
    rows += _simulcast(rows)
    rows = [{k: _clean(v) for k, v in r.items()} for r in rows]
    bd = bd_entries(rows, cfg.base_qualities)
    results = {
        "ground_truth": gt_note,
        "pseudo_ground_truth": truth.pseudo,
        "frames": n,
        "fps": fps,
        "input": cfg.input,
        "size": [ctx.info.width, ctx.info.height],
        "detector_geometry": _geometry_json(working, ctx.info.width, ctx.info.height, cfg.anchor_size),
        "provenance": prov,
        "points": rows,
        "bd_rate": bd,
    }
    _write_csv(out / "results.csv", rows)
    _write_json(out / "results.json", results)
    from vcodec.eval.report import write_plots, write_summary

    write_plots(results, out)
    write_summary(results, out / "summary.md")
    say(f"vcodec eval: results in {out}/ (summary.md, results.csv, results.json, rd_*.png)")
    return results
