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

Modules: :mod:`~vcodec.eval.config` (settings), :mod:`~vcodec.eval.units` (work units),
:mod:`~vcodec.eval.scoring`, :mod:`~vcodec.eval.curves` (BD entries), :mod:`~vcodec.eval.points`
(the typed records), :mod:`~vcodec.eval.provenance`, :mod:`~vcodec.eval.output` (atomic files);
this one drives them.  Its old names (``EvalConfig``, ``METRIC_COLUMNS``, ``bd_entries``, ...)
are re-exported here for one release.

Geometry: the detector on pixels (reference, anchors, full decode) works at the
base layer's working geometry (:mod:`vcodec.eval.geometry`): the long side of
``base_size`` or the base model's ``max_long_side``, frames above it scaled down,
padded as the base layer pads, so that every system is scored by the same detector.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vcodec.errors import InputError, OutputError
from vcodec.eval.config import ANCHOR_NAMES, EvalConfig
from vcodec.eval.curves import bd_entries as _bd_entries
from vcodec.eval.detection import truth_classes
from vcodec.eval.groundtruth import load_ground_truth, pseudo_ground_truth
from vcodec.eval.output import as_json, write_csv, write_json
from vcodec.eval.points import METRIC_COLUMNS, EvalPoint, EvalResults, dets_from_json, dets_to_json, fmt_q
from vcodec.eval.provenance import POINT_VERSION, cache_key, geometry_json, provenance
from vcodec.eval.scoring import _anchor_size_rows, _score, _simulcast, anchor_size_system
from vcodec.eval.tracking import ground_truth_tracks
from vcodec.eval.training import TrainingOverlap, describe_overlaps, model_overlap
from vcodec.eval.units import (
    AnchorUnit,
    VcodecUnit,
    WorkUnit,
    _context,
    _describe_unit,
    _run_unit,
    _run_unit_task,
)
from vcodec.hashing import file_sha256

# the old public names, re-exported for one release (they now live in the modules named above)
__all__ = [
    "EvalConfig",
    "EvalResults",
    "run_eval",
    "bd_entries",
    "ANCHOR_NAMES",
    "METRIC_COLUMNS",
    "POINT_VERSION",
    "anchor_size_system",
    "provenance",
]


def bd_entries(
    rows: Sequence[Mapping[str, Any] | EvalPoint], qualities: list[float] | None = None
) -> list[dict[str, Any]]:
    """Deprecated (one release): the BD entries as JSON dicts from JSON rows.

    Use :func:`vcodec.eval.curves.bd_entries` (typed :class:`EvalPoint` in, :class:`BDEntry` out)."""
    warnings.warn(
        "vcodec.eval.runner.bd_entries is deprecated; use vcodec.eval.curves.bd_entries with EvalPoint rows",
        DeprecationWarning,
        stacklevel=2,
    )
    points = [r if isinstance(r, EvalPoint) else EvalPoint.from_json(r) for r in rows]
    return [e.to_json() for e in _bd_entries(points, qualities)]


def _base_layer(cfg: EvalConfig) -> Any:
    """The learned base layer with the run's encoder tools (a ConfigError names a bad one)."""
    from vcodec.codec.base_layer import get_base_factory, kind_for_mode

    return get_base_factory(kind_for_mode("learned")).for_encoding(
        cfg.base_model, cfg.base_size, cfg.base_effort, p_offset=cfg.base_p_offset,
        p_deadzone=cfg.base_deadzone, tune=cfg.base_tune)


def run_eval(cfg: EvalConfig, log: Callable[[str], None] | None = None) -> EvalResults:
    """Run (or resume) an evaluation; returns what ``results.json`` holds (:meth:`EvalResults.to_json`)."""
    cfg.check()
    # the base layer as the points code it: its tools are checked here, before anything is written
    base = _base_layer(cfg) if cfg.base_qualities else None
    say = log or (lambda m: print(m, file=sys.stderr))
    out = Path(cfg.output)
    try:
        (out / "points").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create results folder {out}: {exc.strerror or exc}") from None
    ctx = _context(cfg)
    if cfg.detector is None and base is not None:
        cfg.detector = base.detector_name
        ctx.cfg = cfg
    detector = ctx.detector
    n, fps = len(ctx.frames), float(ctx.info.fps)
    if cfg.intra_period is None:
        # MPEG machine-vision test conditions: 32 at <= 30 fps, 64 at 50/60 fps
        cfg.intra_period = 64 if fps > 35 else 32
        ctx.cfg = cfg
    # as results.json stores it, so that what run_eval returns equals what reading the file gives
    prov = as_json(provenance(cfg, detector))
    write_json(out / "provenance.json", prov)

    # reference detections on the uncompressed frames (also the pseudo ground truth)
    ref_path = out / "reference.json"
    det_sig = f"{detector.name}:{prov['detector']['sha256']}"
    in_path = Path(cfg.input)
    # a file by its content: a clip copied afresh (a new machine, a re-provisioned data folder)
    # keeps its stored points; anything else (a folder of pictures) by path, size and mtime
    input_sig = (
        {"size": in_path.stat().st_size, "sha256": file_sha256(in_path)} if in_path.is_file() else {
            "path": str(in_path.resolve()),
            "size": 0,
            "mtime": int(in_path.stat().st_mtime) if in_path.exists() else 0,
        }
    )
    working = ctx.working
    geometry = working.key()
    say(
        f"vcodec eval: the detector on pixels works at the base layer's geometry: "
        f"{working.describe(ctx.info.width, ctx.info.height)}"
    )
    ref_key = cache_key(cfg, {"system": "reference"}, input_sig, "", det_sig, geometry)
    ref = json.loads(ref_path.read_text()) if ref_path.is_file() else {}
    if ref.get("key") != ref_key:
        say(f"vcodec eval: reference detections ({detector.name}) on {n} uncompressed frames")
        t0 = time.perf_counter()
        ref = {
            "key": ref_key,
            "id": "reference",
            "system": "reference",
            "detections": dets_to_json(ctx.detect_pixels(ctx.frames)),
            "decode_s": time.perf_counter() - t0,
        }
        write_json(ref_path, ref)
    ref_dets = dets_from_json(ref["detections"])

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
    write_json(out / "groundtruth.json", truth.to_json())
    gt_tracks, ids_assigned = ground_truth_tracks(truth)
    scored = truth_classes(truth, cfg.min_class_objects)
    gt_note = truth.describe() + (
        "; track ids of the ground truth assigned by the IoU/Kalman tracker" if ids_assigned else ""
    ) + "; " + scored.describe()
    say(f"vcodec eval: {gt_note}")

    # model signature for cache keys: a change of weights or of how the base layer codes (its
    # LAYER_CONFIG record: payload version, coding tools) must invalidate vcodec points, and so
    # must a new enhancement payload layout (it changes the full points' bytes) and a change of
    # the analytics path's numerics (vcodec.detection.exact: the base points' detections)
    model_sig = ""
    training_overlap: tuple[TrainingOverlap, ...] | None = None
    if base is not None:
        from vcodec.detection.exact import EXACT_VERSION
        from vcodec.enhancement.packet import PAYLOAD_VERSION as ENH_PAYLOAD_VERSION

        record = base.layer_config(0.0, cfg.intra_period)
        # the adapted back end decides the base points' detections: retrained, it must recompute them
        parts = base.trained_parts(detector)
        model_sig = (base.sha256 + ":" + json.dumps({k: v for k, v in record.items() if k != "base_quality"},
                                                    sort_keys=True, default=str)
                     + f":enh-payload-{ENH_PAYLOAD_VERSION}:exact-{EXACT_VERSION}"
                     + "".join(f":{p.model}={p.sha256}" for p in parts if p.role != "base model"))
        indexes = [f.index for f in ctx.frames]
        if indexes == list(range(indexes[0], indexes[0] + n)):  # a window; the records list windows too
            training_overlap = tuple(
                model_overlap(part.role, part.model, part.record, cfg.input, indexes[0], n) for part in parts
            )
            say(f"vcodec eval: evaluated frames trained on: {describe_overlaps(training_overlap)}")

    # plan the work: skip points whose stored key matches
    units: list[WorkUnit] = []
    keys: dict[str, str] = {}
    stored: dict[str, dict[str, Any]] = {}

    def cached(pid: str, spec: dict[str, Any], uses_model: bool = True) -> bool:
        # anchors never touch the base model: retraining it must not recompute them
        keys[pid] = cache_key(cfg, spec, input_sig, model_sig if uses_model else "", det_sig, geometry)
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
        base_done = cached(f"vcodec-base_q{fmt_q(q)}", {"system": "vcodec-base", "q": q})
        qps = [
            qp
            for qp in cfg.enh_qps
            if not cached(
                f"vcodec-full_q{fmt_q(q)}_qp{qp}",
                # "auto" decided on frame 0 alone before issue 15: its old points must not be reused
                {"system": "vcodec-full", "q": q, "qp": qp,
                 "inter_layer": "auto-per-gop" if cfg.inter_layer == "auto" else cfg.inter_layer},
            )
        ]
        if not base_done or qps:
            units.append(VcodecUnit(q, tuple(qps), need_base=not base_done))
    for a in cfg.anchors:
        for qp in cfg.anchor_qps:
            spec = {"system": a, "qp": qp, **({"anchor_size": cfg.anchor_size} if cfg.anchor_size else {})}
            if not cached(f"{a}_qp{qp}", spec, uses_model=False):
                units.append(AnchorUnit(a, qp))
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
            write_json(out / "points" / f"{p['id']}.json", p)
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
    rows = [_score({**ref, "system": "reference"}, truth, gt_tracks, cfg, scored.classes)]
    order = [f"vcodec-base_q{fmt_q(q)}" for q in cfg.base_qualities]
    order += [f"vcodec-full_q{fmt_q(q)}_qp{qp}" for q in cfg.base_qualities for qp in cfg.enh_qps]
    order += [f"{a}_qp{qp}" for a in cfg.anchors for qp in cfg.anchor_qps]
    for pid in order:
        row = _score(stored[pid], truth, gt_tracks, cfg, scored.classes)
        rows.append(row)
        write_csv(out / "points" / f"{pid}.csv", [row])  # as scored (NaN written as nan)
    rows += _anchor_size_rows(cfg, stored, truth, gt_tracks, scored.classes)
    rows += _simulcast(rows)
    rows = [r.finite() for r in rows]
    results = EvalResults(
        input=cfg.input,
        frames=n,
        fps=fps,
        size=(ctx.info.width, ctx.info.height),
        ground_truth=gt_note,
        pseudo_ground_truth=truth.pseudo,
        provenance=prov,
        points=tuple(rows),
        bd_rate=tuple(_bd_entries(rows, cfg.base_qualities)),
        detector_geometry=geometry_json(working, ctx.info.width, ctx.info.height, cfg.anchor_size),
        training_overlap=training_overlap,
    )
    write_csv(out / "results.csv", rows)
    write_json(out / "results.json", results.to_json())
    from vcodec.eval.report import write_plots, write_summary

    write_plots(results, out)
    write_summary(results, out / "summary.md")
    say(f"vcodec eval: results in {out}/ (summary.md, results.csv, results.json, rd_*.png)")
    return results
