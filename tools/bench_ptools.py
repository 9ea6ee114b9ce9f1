#!/usr/bin/env python
"""The base layer's P-frame coding tools, variant by variant, on static-camera clips.

For each clip and variant (payload v1 = vcodec 0.1; v2 with hyperprior reuse,
RDOQ, skip blocks): mean bits per I- and P-frame, the P/I ratio, the share of
skipped blocks, mAP@0.5 of the base-layer detections (the detector's back end on
T(y_hat)) against the same detector on the uncompressed frames in the base
layer's geometry, and of the back end adapted to the model's features (what
base-layer analytics run by default; ``map50_adapted``, scored as
``tools/bench_backend.py`` does), the feature error MSE(T(y_hat), F(x)) / var(F(x)) (stabler
than mAP on a few dozen objects), and a decode check (the decoder's y_hat equals the
encoder's, bit for bit).

    python tools/bench_ptools.py --quality 0.5 --frames 32 --json out.json
    python tools/bench_ptools.py --variants v1,v2 --lambdas 4,8,16
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_base import reference_detections  # noqa: E402
from train_base import CLIPS, load_detector  # noqa: E402

from vcodec.baselayer.learned import BaseCodec, CodingTools  # noqa: E402
from vcodec.baselayer.learned.base_codec import frame_to_tensor  # noqa: E402
from vcodec.baselayer.learned.plugin import default_base_model  # noqa: E402
from vcodec.detection.evaluate import map_against  # noqa: E402
from vcodec.io import open_video  # noqa: E402
from vcodec.io.frame import Frame  # noqa: E402

#: static-camera clips (issue: P-frame <= 15 % of I-frame at q 0.5), start frame
STATIC_CLIPS = [
    ("one-by-one-person-detection.mp4", 60),
    ("car-detection.mp4", 200),
    ("CiscoVT2people_320x192_12fps.yuv", 0),
]


def _v2(**tools: Any) -> CodingTools:
    """A vcodec 0.2 setting: payload version 2, no motion field, P-frames 0.1 below their intra
    frame unless told otherwise (the variants measured before motion compensation)."""
    return CodingTools(motion=0, payload_version=2, **{"p_quality_offset": -0.1, "skip_block": 2, **tools})


def _mc(**tools: Any) -> CodingTools:
    """Motion compensation as first measured: no temporal dead zone and skip blocks of 2 x 2 unless
    told otherwise."""
    return CodingTools(**{"p_deadzone": 0.0, "skip_block": 2, **tools})


VARIANTS: dict[str, CodingTools] = {
    "v1": CodingTools.version1(),
    "v2": CodingTools.version2(),  # the defaults of vcodec 0.2 (no motion field)
    "z-never": _v2(skip_block=0, z_refresh="never", p_quality_offset=0.0),
    "z-auto": _v2(skip_block=0, p_quality_offset=0.0),
    "zero-skip": _v2(p_quality_offset=0.0),
    "zero-skip-b4": _v2(skip_block=4, p_quality_offset=0.0),
    "zero-skip-z-never": _v2(z_refresh="never", p_quality_offset=0.0),
    "rd-skip": _v2(skip_mode="rd", p_quality_offset=0.0),
    "rdoq": _v2(skip_block=0, rdoq=True, p_quality_offset=0.0),
    "p-0.1": _v2(p_quality_offset=-0.1),  # the default of vcodec 0.2
    "p-0.2": _v2(p_quality_offset=-0.2),
    "dz-0.5": _v2(p_deadzone=0.5),
    "dz-0.75": _v2(p_deadzone=0.75),
    # the change gate: lossy decisions (rd skip, dead zone) only where the source pixels did not change
    "gate-8": _v2(p_gate=8.0),
    "gate-16": _v2(p_gate=16.0),
    "gate-8-dz": _v2(p_gate=8.0, p_deadzone=0.75),
    "gate-16-dz": _v2(p_gate=16.0, p_deadzone=0.75),
    # detected objects protected (the encoder's own detections on the source); lossy elsewhere
    "roi-dz": _v2(p_roi=0.1, p_deadzone=0.75),
    "roi-gate-dz": _v2(p_roi=0.1, p_gate=16.0, p_deadzone=0.75),
    # motion-compensated prediction (payload version 3), without the dead zone: the tools these
    # variants were measured with (docs/BASE_LAYER.md)
    "mc": _mc(),  # the default until the dead zone (P-frames 0.2 below their intra frame)
    "mc-b2": _mc(motion_block=2),
    "mc-b8": _mc(motion_block=8),
    "mc-r4": _mc(motion=4),
    "mc-r16": _mc(motion=16),
    "mc-p0": _mc(p_quality_offset=0.0),
    "mc-p0.1": _mc(p_quality_offset=-0.1),  # the default until vcodec 0.3
    "mc-p0.15": _mc(p_quality_offset=-0.15),
    "mc-p0.2": _mc(p_quality_offset=-0.2),
    "mc-p0.25": _mc(p_quality_offset=-0.25),
    "mc-p0.3": _mc(p_quality_offset=-0.3),
    "mc-int": _mc(motion_precision=1),
    "mc-half": _mc(motion_precision=2),
    "mc-int-p0": _mc(motion_precision=1, p_quality_offset=0.0),
    # the temporal dead zone on top of motion compensation (against the warped reference)
    "mc-dz0.5": _mc(p_deadzone=0.5),  # the default of session 8
    "mc-dz0.55": _mc(p_deadzone=0.55),
    "mc-dz0.55-s4": _mc(p_deadzone=0.55, skip_block=4),  # = the default now: a skip flag per 4x4 positions
    "mc-dz0.6": _mc(p_deadzone=0.6),
    "mc-dz0.65": _mc(p_deadzone=0.65),
    "mc-dz0.75": _mc(p_deadzone=0.75),  # = --base-tune fixed-camera
    "mc-gate16-dz0.75": _mc(p_gate=16.0, p_deadzone=0.75),
    "default": CodingTools(),  # whatever the package's defaults are
    "fixed-camera": CodingTools().tuned("fixed-camera"),  # --base-tune fixed-camera
    "moving-camera": CodingTools().tuned("moving-camera"),
}


def add_common_arguments(ap: argparse.ArgumentParser) -> None:
    """--threads and --json, as every base-layer bench takes them."""
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)


def load_model_and_detector(args: argparse.Namespace) -> tuple[BaseCodec, Any]:
    """Torch threads set, the base model (``args.model``) and its detector in eval mode."""
    torch.set_num_threads(args.threads)
    codec = BaseCodec.from_weights(args.model)
    return codec, load_detector(codec.cfg.detector).eval()


def shipped_detectors(codec: BaseCodec) -> tuple[Any, Any] | None:
    """(the shipped detector, its back end adapted to ``codec``'s features), as base-layer analytics
    run them and ``tools/bench_backend.py`` scores them; None when no adapted back end ships."""
    from vcodec.detection import get_detector
    from vcodec.detection.backends import for_base_layer

    det = get_detector(codec.detector, score_threshold=0.01)
    adapted = for_base_layer(det, codec.model_id, codec.sha256, codec.detector)
    return None if adapted is det else (det, adapted)


def read_frames(name: str, start: int, count: int) -> list[Frame]:
    with open_video(CLIPS / name, start=start, frames=count) as reader:
        return list(reader)


def clean_features(codec: BaseCodec, det: Any, frames: list[Frame]) -> list[torch.Tensor]:
    """F(x): the detector's own split features of the uncompressed frames (base-layer geometry)."""
    out = []
    for f in frames:
        x = frame_to_tensor(f, codec.geometry(f.width, f.height))
        bgr = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])
        t, _ = det.prepare(bgr, mode="pad", multiple=64)
        with torch.no_grad():
            out.append(det.front(t))
    return out


def run_variant(codec: BaseCodec, det: Any, frames: list[Frame], quality: float, intra_period: int,
                tools: CodingTools, clean: list[torch.Tensor], adapted: Any = None) -> dict[str, Any]:
    enc, dec = codec.encoder(quality, intra_period, tools), codec.decoder()
    bits_i: list[int] = []
    bits_p: list[int] = []
    skipped = blocks = 0
    dets = []
    dets_adapted = []
    exact = True
    feat_err: list[float] = []
    t0 = time.perf_counter()
    for f in frames:
        payload, _ = enc.encode_frame(f, reconstruct=False)
        rep = enc.last_report
        assert rep is not None
        (bits_i if rep.intra else bits_p).append(rep.payload_bits)
        skipped += rep.skipped_blocks
        blocks += rep.blocks
        y = dec.decode_frame(payload)
        exact &= bool(torch.equal(y, enc.last_y_hat))
        dets.append(codec.detect(y, det, dec.last_geometry))
        if adapted is not None:
            dets_adapted.append(codec.detect(y, adapted, dec.last_geometry))
        ref = clean[len(dets) - 1]
        feat_err.append(float((codec.features(y) - ref).pow(2).mean() / ref.var()))
    seconds = time.perf_counter() - t0
    mi, mp = float(np.mean(bits_i)), float(np.mean(bits_p)) if bits_p else float("nan")
    return {"bits_i": round(mi), "bits_p": round(mp), "p_over_i": round(mp / mi, 4),
            "skipped_share": round(skipped / blocks, 4) if blocks else 0.0, "decode_exact": exact,
            "feature_error": round(float(np.mean(feat_err)), 4),
            "feature_error_p": round(float(np.mean(feat_err[1:])), 4) if len(feat_err) > 1 else None,
            "dets": dets, "dets_adapted": dets_adapted, "seconds": round(seconds, 2)}


def best_scores(dets: Any, refs: Any, min_ref_score: float = 0.3) -> list[float]:
    """Per reference box (score >= ``min_ref_score``): the best prediction score overlapping it at
    IoU >= 0.5 (0 when none): where a variant loses a detection, frame by frame."""
    from vcodec.eval.tracking import iou_matrix

    ref_boxes = np.asarray(refs.boxes).reshape(-1, 4)[np.asarray(refs.scores) >= min_ref_score]
    scores = np.asarray(dets.scores, dtype=np.float64)
    hits = iou_matrix(ref_boxes, dets.boxes) >= 0.5  # reference objects x predictions
    return [round(float(scores[h].max()) if h.any() else 0.0, 2) for h in hits]


def curves(codec: BaseCodec, det: Any, variants: dict[str, CodingTools], qualities: list[float],
           args: argparse.Namespace, starts: dict[str, int]) -> int:
    """Rate-fidelity and rate-mAP curves per variant and clip; BD-rates against the first variant."""
    from vcodec.eval.bdrate import bd_rate_result

    report: dict[str, Any] = {"model": codec.model_id, "qualities": qualities, "frames": args.frames,
                              "intra_period": args.intra_period, "clips": {}}
    shipped = shipped_detectors(codec)
    metrics = ("feature_psnr", "map50") + (("map50_adapted",) if shipped is not None else ())
    for name in args.clips.split(","):
        if not (CLIPS / name).exists():
            continue
        frames = read_frames(name, starts.get(name, 0), args.frames)
        clean = clean_features(codec, det, frames)
        refs = reference_detections(codec, det, frames)
        refs_shipped = None if shipped is None else reference_detections(codec, shipped[0], frames)
        rows: dict[str, list[dict[str, float]]] = {}
        for label, tools in variants.items():
            rows[label] = []
            for q in qualities:
                r = run_variant(codec, det, frames, q, args.intra_period, tools, clean,
                                None if shipped is None else shipped[1])
                dets_adapted = r.pop("dets_adapted")
                m50 = float(map_against(refs, r.pop("dets"))["map50"])
                n_p = max(len(frames) - 1, 0)
                bits = (r["bits_i"] + r["bits_p"] * n_p) / len(frames) if n_p else r["bits_i"]
                row = {
                    "quality": q,
                    "bits_per_frame": round(bits, 1),
                    "map50": round(m50, 4),
                    "df": r["feature_error"],
                    "feature_psnr": round(-10 * math.log10(r["feature_error"]), 4),
                }
                if refs_shipped is not None:
                    row["map50_adapted"] = round(float(map_against(refs_shipped, dets_adapted)["map50"]), 4)
                rows[label].append(row)
                print(f"{name[:30]:30} {label:16} q={q:.2f} {bits:9.0f} bits/frame  "
                      f"Df {r['feature_error']:.4f}  mAP@0.5 {m50:.3f}  adapted "
                      f"{row.get('map50_adapted', float('nan')):.3f}", flush=True)
        first = next(iter(rows))
        bd: dict[str, Any] = {}
        for label in rows:
            if label == first:
                continue
            anchor, test = rows[first], rows[label]
            bd[label] = {}
            for metric in metrics:
                res = bd_rate_result([p["bits_per_frame"] for p in anchor], [p[metric] for p in anchor],
                                     [p["bits_per_frame"] for p in test], [p[metric] for p in test])
                bd[label][metric] = None if res.value is None else round(res.value, 2)
                print(f"{name[:30]:30} BD-rate {label} vs {first} (bits, {metric}; envelope): "
                      f"{'n/a (' + str(res.reason) + ')' if res.value is None else f'{res.value:+.1f} %'}",
                      flush=True)
        report["clips"][name] = {"rows": rows, "bd_vs_first": bd}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_base_model())
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    ap.add_argument("--lambdas", default="", help="also run rd-skip at these RDO lambdas (comma-separated)")
    ap.add_argument("--rdoq-lambdas", default="", help="also run RDOQ (no skip) at these lambdas")
    ap.add_argument("--clips", default=",".join(n for n, _ in STATIC_CLIPS))
    ap.add_argument("--curves", default="", help="qualities (comma-separated): run every variant at each "
                    "and report BD-rate against the first variant on (bits per frame, feature PSNR = "
                    "-10 log10 Df)")
    ap.add_argument("--starts", default="",
                    help="first frame per clip, overriding the defaults: clip=frame,... (e.g. the held-out "
                    "one-by-one-person-detection.mp4=1115)")
    ap.add_argument("--per-frame", action="store_true",
                    help="print and store, per frame, the adapted back end's best score on each reference "
                    "object (score >= 0.3 on the source; 0 = lost)")
    add_common_arguments(ap)
    args = ap.parse_args(argv)
    codec, det = load_model_and_detector(args)
    variants = {k: VARIANTS[k] for k in args.variants.split(",") if k}
    for lam in [float(s) for s in args.lambdas.split(",") if s]:
        variants[f"rd-skip-lam{lam:g}"] = replace(CodingTools(), skip_mode="rd", rdo_lambda=lam)
    for lam in [float(s) for s in args.rdoq_lambdas.split(",") if s]:
        variants[f"rdoq-lam{lam:g}"] = replace(CodingTools(), rdo_lambda=lam, skip_block=0, rdoq=True)
    starts = dict(STATIC_CLIPS)
    for item in filter(None, args.starts.split(",")):
        clip, _, frame = item.rpartition("=")
        if not clip or not frame.isdigit():
            ap.error(f"--starts item {item!r} is not clip=frame")
        starts[clip] = int(frame)
    if args.curves:
        return curves(codec, det, variants, [float(q) for q in args.curves.split(",")], args, starts)
    report: dict[str, Any] = {"model": codec.model_id, "quality": args.quality, "frames": args.frames,
                              "intra_period": args.intra_period, "threads": args.threads, "clips": {}}
    shipped = shipped_detectors(codec)
    print(f"{'clip':34} {'variant':14} {'bits/I':>7} {'bits/P':>7} {'P/I':>6} {'skip':>5} {'mAP50':>6} "
          f"{'adapt':>6} {'Df':>6} exact  s")
    for name in args.clips.split(","):
        if not (CLIPS / name).exists():
            print(f"{name}: not in {CLIPS}, skipped")
            continue
        frames = read_frames(name, starts.get(name, 0), args.frames)
        refs = reference_detections(codec, det, frames)
        clean = clean_features(codec, det, frames)
        refs_shipped = None if shipped is None else reference_detections(codec, shipped[0], frames)
        report["clips"][name] = {"start": starts.get(name, 0), "variants": {}}
        for label, tools in variants.items():
            r = run_variant(codec, det, frames, args.quality, args.intra_period, tools, clean,
                            None if shipped is None else shipped[1])
            m = map_against(refs, r.pop("dets"))
            r["map50"] = round(float(m["map50"]), 4)
            r["num_ref"] = m["num_ref"]
            dets_adapted = r.pop("dets_adapted")
            r["map50_adapted"] = None if refs_shipped is None else \
                round(float(map_against(refs_shipped, dets_adapted)["map50"]), 4)
            if args.per_frame and refs_shipped is not None:
                r["best_scores_adapted"] = [
                    best_scores(d, ref) for d, ref in zip(dets_adapted, refs_shipped, strict=False)
                ]
                for k, row in enumerate(r["best_scores_adapted"]):
                    print(f"  {label} frame {starts.get(name, 0) + k}: best adapted score per reference "
                          f"object {row}", flush=True)
            r["tools"] = tools.to_dict()
            report["clips"][name]["variants"][label] = r
            print(f"{name[:34]:34} {label:14} {r['bits_i']:7d} {r['bits_p']:7d} {r['p_over_i']:6.3f} "
                  f"{r['skipped_share']:5.2f} {r['map50']:6.3f} "
                  f"{float('nan') if r['map50_adapted'] is None else r['map50_adapted']:6.3f} "
                  f"{r['feature_error']:6.4f} "
                  f"{str(r['decode_exact']):5} {r['seconds']}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
