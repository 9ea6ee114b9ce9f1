#!/usr/bin/env python
"""Benchmark the split detectors: front / back / total ms per frame, parameters, agreement.

For every detector: median wall time of ``front`` and ``back`` (back includes
decoding and NMS) on a real frame prepared at each ``--sizes`` (default the
issue's 416x416 plus 448x256, the padded 416x240 HEVC class D picture the
base layer decodes), on ``--threads`` CPU threads.  Detectors without weights
(``yolox-tiny`` and the torchvision models unless ``--weights NAME=FILE``) run
with random weights: their timings are valid, their boxes are not.

Timings are the median (and minimum) over ``--reps`` runs; on a machine shared
with other jobs the minimum is the better estimate of the detector's own cost.

Agreement: mAP@0.5 of ``vcodec-det`` against YOLOX-Nano's detections
(score >= 0.3) on the held-out frames of the shared clips (the last 20% of
each clip, which training never saw; every 2nd frame of clips over 300 frames,
as in training), both detectors letterboxing into 416x416.

    python tools/bench_detect.py --json runs/bench_detect.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vcodec.detection import get_detector
from vcodec.detection.base import SplitDetector
from vcodec.detection.clips import iter_clip_bgr, list_clips, load_clip, shared_dir, split_holdout
from vcodec.detection.evaluate import map_against
from vcodec.detection.vcodec_det import VCODEC_DET_CLASSES

DEFAULT_DETECTORS = [
    "vcodec-det",
    "yolox-nano",
    "yolox-tiny",
    "fasterrcnn-r50-fpn",
    "retinanet-r50-fpn",
    "fcos-r50-fpn",
]


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def time_detector(det: SplitDetector, bgr: np.ndarray, size: tuple[int, int], reps: int) -> dict[str, float]:
    w, h = size
    x, g = det.prepare(bgr, "letterbox", (h, w))
    fronts, backs = [], []
    with torch.no_grad():
        for i in range(reps + 1):
            t0 = time.perf_counter()
            f = det.front(x)
            t1 = time.perf_counter()
            det.back(f, g)
            t2 = time.perf_counter()
            if i:  # the first run warms up allocators and caches
                fronts.append((t1 - t0) * 1e3)
                backs.append((t2 - t1) * 1e3)
    fm, bm = statistics.median(fronts), statistics.median(backs)
    # the minimum is reported too: on a shared machine other jobs inflate the median
    return {
        "front_ms": round(fm, 2), "back_ms": round(bm, 2), "total_ms": round(fm + bm, 2),
        "front_ms_min": round(min(fronts), 2), "back_ms_min": round(min(backs), 2),
    }


def agreement(
    det: SplitDetector, ref: SplitDetector, clips: list[Path], noise: list[float], seed: int = 0
) -> dict[str, dict[str, float]]:
    """mAP@0.5 of ``det`` and of ``ref`` itself against ``ref``'s clean detections, with the split
    features perturbed by Gaussian noise of ``sigma`` x each channel's std (what an imperfect
    base-layer transform does to them)."""
    gen = torch.Generator().manual_seed(seed)
    frames = []
    for path in clips:
        n_all = sum(1 for _ in iter_clip_bgr(path, 1)) if path.suffix not in (".yuv", ".i420") else None
        step = 2 if n_all is not None and n_all > 300 else 1
        clip = load_clip(path, step)
        _, hold = split_holdout(len(clip.pictures))
        frames += [clip.pictures[k] for k in hold]
    refs: list = []
    preds: dict[str, list] = {}
    saved = det.score_threshold, ref.score_threshold
    ch_std = None
    with torch.no_grad():
        for bgr in frames:
            x, g = ref.prepare(bgr, "letterbox", 416)
            f = ref.front(x)
            if ch_std is None:
                ch_std = f.transpose(0, 1).reshape(f.shape[1], -1).std(1).view(1, -1, 1, 1)
            refs.append(ref.back(f, g)[0])
            fd = det.front(x) if det.split_channels != f.shape[1] or det.front is not ref.front else f
            for sigma in noise:
                noisy_r = f + sigma * ch_std * torch.randn(f.shape, generator=gen)
                noisy_d = fd + sigma * ch_std * torch.randn(fd.shape, generator=gen)
                det.score_threshold = ref.score_threshold = 0.01
                preds.setdefault(f"{det.name}@{sigma}", []).append(det.back(noisy_d, g)[0])
                if sigma > 0:
                    preds.setdefault(f"{ref.name}@{sigma}", []).append(ref.back(noisy_r, g)[0])
                det.score_threshold, ref.score_threshold = saved
    out = {}
    for key, p in preds.items():
        res = map_against(refs, p, VCODEC_DET_CLASSES, reference_min_score=0.3)
        res["frames"] = len(refs)
        out[key] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", nargs="+", default=DEFAULT_DETECTORS)
    ap.add_argument("--sizes", nargs="+", type=parse_size, default=[(416, 416), (448, 256)])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument(
        "--yolox-nano", type=Path, default=shared_dir() / "models" / "yolox_nano" / "yolox_nano.onnx"
    )
    ap.add_argument("--weights", nargs="*", default=[], help="NAME=FILE weights for other detectors")
    ap.add_argument("--clips", type=Path, default=shared_dir() / "data" / "clips")
    ap.add_argument("--no-agreement", action="store_true")
    ap.add_argument("--noise", nargs="*", type=float, default=[0.0, 0.1, 0.2],
                    help="feature noise levels (x channel std) for the agreement/robustness check")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = dict(w.split("=", 1) for w in args.weights)
    if args.yolox_nano.is_file():
        weights.setdefault("yolox-nano", str(args.yolox_nano))
    clips = list_clips(args.clips)
    if clips:
        bgr = next(iter_clip_bgr(clips[-1], 1, 1))[1]  # a real picture (random weights do not care)
    else:
        bgr = np.random.default_rng(0).integers(0, 256, (240, 416, 3), dtype=np.uint8)
    results: dict[str, dict] = {}
    for name in args.detectors:
        det = get_detector(name, weights.get(name))
        big = name.endswith("-fpn")
        row: dict[str, object] = {"weights": "shipped" if name == "vcodec-det" else (
            Path(weights[name]).name if name in weights else "random (timing only)")}
        row.update({f"params_{k}": v for k, v in det.num_parameters().items()})
        row["split_channels"] = det.split_channels
        for size in args.sizes:
            row[f"{size[0]}x{size[1]}"] = time_detector(
                det, bgr, size, max(2, args.reps // 4) if big else args.reps
            )
        results[name] = row
        print(name, json.dumps(row), flush=True)
    if not args.no_agreement and "yolox-nano" in weights and clips:
        ref = get_detector("yolox-nano", weights["yolox-nano"])
        det = get_detector("vcodec-det")
        agree = agreement(det, ref, clips, args.noise)
        results["agreement_vs_yolox_nano"] = agree
        for key, res in agree.items():
            print(
                f"mAP@0.5 vs YOLOX-Nano, held-out frames, {key} (feature noise): {json.dumps(res)}",
                flush=True,
            )
    meta = {
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "reps": args.reps,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
