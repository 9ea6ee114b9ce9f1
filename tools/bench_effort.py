#!/usr/bin/env python
"""Encoder effort fast vs slow on intra frames: BD-rate on feature fidelity, and the time it costs.

Codes held-out frames of the shared clips as intra frames at several base
qualities with ``CodingTools(effort="fast")`` and ``effort="slow"`` (latent
refinement, vcodec/baselayer/learned/refine.py), and reports per quality the mean bits,
the feature error Df = MSE(T(y_hat), F(x)) / var(F(x)) against the detector's
features of the uncompressed frame, and the encode time per frame; then the
BD-rate of slow against fast on (bits, feature PSNR = -10 log10 Df).

    python tools/bench_effort.py --frames 4 --json /tmp/effort.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_ptools import add_common_arguments, clean_features, load_model_and_detector, read_frames  # noqa: E402
from train_base import CLIPS  # noqa: E402

from vcodec.baselayer.learned import CodingTools  # noqa: E402
from vcodec.baselayer.learned.plugin import default_base_model  # noqa: E402
from vcodec.eval.bdrate import bd_rate  # noqa: E402

#: clip, first held-out frame (frames after the training split of base-yolox-nano-v2)
CLIPS_HELD_OUT = [("cars_320x240.i420", 24), ("one-by-one-person-detection.mp4", 1200),
                  ("Zhling_1280x720.264", 15)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_base_model())
    ap.add_argument("--qualities", default="0.5,0.625,0.75,0.875,1.0")
    ap.add_argument("--frames", type=int, default=4, help="held-out frames per clip")
    add_common_arguments(ap)
    args = ap.parse_args(argv)
    codec, det = load_model_and_detector(args)
    frames = []
    for name, start in CLIPS_HELD_OUT:
        if (CLIPS / name).exists():
            frames += read_frames(name, start, args.frames)
    clean = clean_features(codec, det, frames)
    qualities = [float(s) for s in args.qualities.split(",")]
    curves: dict[str, list[dict[str, Any]]] = {}
    for effort in ("fast", "slow"):
        curves[effort] = []
        for q in qualities:
            bits, dfs, secs = [], [], []
            for f, ref in zip(frames, clean, strict=True):
                enc = codec.encoder(q, 1, CodingTools(effort=effort))
                t0 = time.perf_counter()
                payload, _ = enc.encode_frame(f, reconstruct=False)
                secs.append(time.perf_counter() - t0)
                bits.append(8 * len(payload))
                dfs.append(float((codec.features(enc.last_y_hat) - ref).pow(2).mean() / ref.var()))
            point = {"quality": q, "bits": float(np.mean(bits)), "df": float(np.mean(dfs)),
                     "feature_psnr": -10 * math.log10(float(np.mean(dfs))),
                     "seconds_per_frame": float(np.mean(secs))}
            curves[effort].append(point)
            print(f"{effort:4} q={q:.3f} bits={point['bits']:9.0f} Df={point['df']:.4f} "
                  f"fPSNR={point['feature_psnr']:.3f} dB  {point['seconds_per_frame']:.2f} s/frame",
                  flush=True)
    bd = bd_rate([p["bits"] for p in curves["fast"]], [p["feature_psnr"] for p in curves["fast"]],
                 [p["bits"] for p in curves["slow"]], [p["feature_psnr"] for p in curves["slow"]])
    time_ratio = (np.mean([p["seconds_per_frame"] for p in curves["slow"]])
                  / np.mean([p["seconds_per_frame"] for p in curves["fast"]]))
    print(f"BD-rate slow vs fast on (bits, feature PSNR): {bd:+.2f} %; intra encode time x{time_ratio:.2f} "
          f"({len(frames)} held-out frames, {args.threads} thread(s))")
    if args.json:
        args.json.write_text(json.dumps({"model": codec.model_id, "frames": len(frames), "curves": curves,
                                         "bd_rate_pct": bd, "time_ratio": float(time_ratio)},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
