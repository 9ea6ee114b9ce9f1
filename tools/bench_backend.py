#!/usr/bin/env python
"""mAP@0.5 of base-layer detection per clip and quality: the plain back end against the adapted one.

For every shared clip (the held-out frames of ``tools/bench_base.py``, never
trained on by ``tools/train_base.py`` or ``tools/train_backend.py``) and every
base quality, the clip is coded as one sequence (intra period 32, default
coding tools) and decoded by the real decoder; on each decoded latent the
detector runs

* **plain**: the clean detector's back end on T(y_hat)
  (``BaseCodec.detect(y_hat, detector, geometry)``), and
* **adapted**: what base-layer analytics run by default
  (``LearnedBase.detect``, which picks the back end shipped for the model),

both scored (COCO mAP@0.5, predictions down to score 0.01) against the clean
detector on the uncompressed frame in the same geometry (reference objects:
score >= 0.3).  ``--models base-vcodec-det-v2`` measures that model with
``vcodec-det`` (against vcodec-det on the uncompressed frames, and against
YOLOX-Nano on them, restricted to vcodec-det's 6 classes); ``--speed``
times base-only detection at 416x240 with both shipped models.

    python tools/bench_backend.py --json runs/bench_backend.json
    python tools/bench_backend.py --models base-vcodec-det-v2 --speed --json runs/bench_vdet.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_base import BENCH_CLIPS, CLIPS, held_out, reference_detections  # noqa: E402
from train_backend import held_out_description  # noqa: E402

from vcodec.baselayer.learned import BaseCodec  # noqa: E402
from vcodec.codec.base_layer import LearnedBase  # noqa: E402
from vcodec.detection import get_detector  # noqa: E402
from vcodec.detection.evaluate import map_against  # noqa: E402
from vcodec.io.frame import Frame  # noqa: E402

SCORE_FLOOR = 0.01  # predictions kept for mAP ranking (vcodec eval's default)


def decode_clip(codec: BaseCodec, frames: list[Frame], quality: float,
                bits_by_type: dict[str, list[int]] | None = None) -> tuple[list[tuple[Any, Any]], float]:
    """(y_hat, geometry) of every frame through the real decoder, and the mean bits per frame.

    ``bits_by_type``, when given, receives each payload's bits under "I" or "P".
    """
    from vcodec.baselayer.learned import BasePayload

    enc, dec = codec.encoder(quality, 32), codec.decoder()
    out, bits = [], 0
    for f in frames:
        payload, _ = enc.encode_frame(f, reconstruct=False)
        bits += 8 * len(payload)
        if bits_by_type is not None:
            bits_by_type.setdefault("I" if BasePayload.from_bytes(payload).intra else "P", []).append(
                8 * len(payload))
        out.append((dec.decode_frame(payload), dec.last_geometry))
    return out, bits / len(frames)


def bench_model(model: str, qualities: list[float], clips: list[tuple[str, float, list[Frame]]]
                ) -> dict[str, Any]:
    codec = BaseCodec.from_weights(model)
    det = get_detector(codec.detector, score_threshold=SCORE_FLOOR)
    base = LearnedBase(codec)
    adapted = base.analytics_detector(det)
    has_adapted = adapted is not det
    print(f"{model} ({codec.sha256[:12]}), detector {det.name}; adapted back end: "
          f"{getattr(adapted, 'backend', None) or 'none'}", flush=True)
    # a detector other than YOLOX-Nano is also scored against YOLOX-Nano on the uncompressed frames
    # (on its own classes): what a user gets, not only how much the base layer loses
    yolox = get_detector("yolox-nano", score_threshold=SCORE_FLOOR) if det.name != "yolox-nano" else None
    rows: list[dict[str, Any]] = []
    for name, fps, frames in clips:
        refs = reference_detections(codec, det, frames)
        n_ref = sum(len(r.filter(0.3)) for r in refs)
        yolox_refs = reference_detections(codec, yolox, frames) if yolox is not None else None
        for q in qualities:
            by_type: dict[str, list[int]] = {}
            decoded, bits = decode_clip(codec, frames, q, by_type)
            plain = [codec.detect(y, det, g) for y, g in decoded]
            row = {"clip": name, "quality": q, "kbps": round(bits * fps / 1000, 1), "ref_objects": n_ref,
                   "bits_per_i": round(float(np.mean(by_type["I"]))) if by_type.get("I") else None,
                   "bits_per_p": round(float(np.mean(by_type["P"]))) if by_type.get("P") else None,
                   "plain": round(map_against(refs, plain)["map50"], 3)}
            if has_adapted:
                ada = [base.detect(y, det, g) for y, g in decoded]
                row["adapted"] = round(map_against(refs, ada)["map50"], 3)
            if yolox_refs is not None:
                vs_yolox = map_against(yolox_refs, plain, det.active_classes)["map50"]
                row["plain_vs_yolox_nano"] = round(vs_yolox, 3)
            rows.append(row)
            print(f"  {name[:28]:28s} q={q:4.2f} {row['kbps']:7.1f} kbit/s  I {row['bits_per_i'] or 0:6d} "
                  f"P {row['bits_per_p'] or 0:6d} bits  refs {n_ref:3d}  plain "
                  f"{row['plain']:.3f}" + (f"  adapted {row['adapted']:.3f}" if has_adapted else "")
                  + (f"  plain vs YOLOX-Nano {row['plain_vs_yolox_nano']:.3f}" if yolox_refs else ""),
                  flush=True)
    return {"model": model, "sha256": codec.sha256, "detector": det.name,
            "adapted_backend": getattr(adapted, "backend", None), "rows": rows}


def speed(model: str, frames: list[Frame], reps: int = 2) -> dict[str, float]:
    """Base-only decode + detect of 416x240 frames (q 0.5), frames/s, and the detector back end alone."""
    import cv2

    codec = BaseCodec.from_weights(model)
    det = get_detector(codec.detector)
    base = LearnedBase(codec)
    small = [Frame.from_rgb(cv2.resize(f.to_rgb(), (416, 240), interpolation=cv2.INTER_AREA), index=i)
             for i, f in enumerate(frames)]
    decoded, _ = decode_clip(codec, small, 0.5)
    base.detect(decoded[0][0], det, decoded[0][1])  # warm-up: builds the float64 copy
    t = time.perf_counter()
    for _ in range(reps):
        for y, g in decoded:
            base.detect(y, det, g)
    detect_ms = 1000 * (time.perf_counter() - t) / (reps * len(decoded))
    feats = codec.features(decoded[0][0])
    back = base.analytics_detector(det)
    t = time.perf_counter()
    with torch.no_grad():
        for _ in range(reps * 5):
            back.back(feats)
    return {"detect_on_features_ms_float64": round(detect_ms, 1),
            "back_end_ms_float32": round(1000 * (time.perf_counter() - t) / (reps * 5), 1),
            "back_end_parameters": back.num_parameters()["back"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["base-yolox-nano-v2"],
                    help="base model ids or .json paths")
    ap.add_argument("--qualities", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--max-frames", type=int, default=30, help="held-out frames per clip (cap)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed", action="store_true", help="time base-only detection with both shipped models")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    qualities = [float(s) for s in args.qualities.split(",")]
    clips = [(n, fps, held_out(n, min(lim, args.max_frames)))
             for n, fps, lim in BENCH_CLIPS if (CLIPS / n).exists()]
    held = {n: held_out_description(n, [f.index for f in fr]) for n, _, fr in clips}
    print("held-out: " + "; ".join(f"{n} {d}" for n, d in held.items()), flush=True)
    report: dict[str, Any] = {"threads": args.threads, "score_floor": SCORE_FLOOR, "reference_min_score": 0.3,
                              "held_out": held,
                              "models": [bench_model(m, qualities, clips) for m in args.models]}
    if args.speed:
        person = next(fr for n, _, fr in clips if n.startswith("one-by-one"))
        models = ("base-yolox-nano-v2", "base-vcodec-det-v2")
        report["speed_416x240"] = {m: speed(m, person[:10]) for m in models}
        print(f"speed at 416x240, {args.threads} thread(s): {report['speed_416x240']}", flush=True)
    for m in report["models"]:
        rows = m["rows"]
        by_q = {q: [r for r in rows if r["quality"] == q] for q in qualities}
        for q, rs in by_q.items():
            line = f"{m['model']} q={q}: plain mean {np.mean([r['plain'] for r in rs]):.3f}"
            if "adapted" in rs[0]:
                line += f", adapted mean {np.mean([r['adapted'] for r in rs]):.3f}"
            print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
