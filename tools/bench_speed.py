#!/usr/bin/env python3
"""Steady-state speed of the three jobs at one picture size, in one process.

The CLI's frames/s figures include process start-up, and importing
compressai (which pulls torchvision and torch_geometric) costs ~4 s per
process; this tool measures the codec itself after warm-up, which is what the
speed targets are about:

* encode (both layers) frames/s, frames 2.. (the first pays for model warm-up);
* full decode (``layers="all"``) and base-only decode + detect
  (``layers="base"``, detector back end on T(y_hat)) frames/s, second run,
  decoder set-up included.

    python tools/bench_speed.py                                  # bundled 416x240 clip, 2 threads
    python tools/bench_speed.py CLIP --threads 2 --frames 30 --json speed.json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import torch

from vcodec.codec import Decoder, Encoder, bundled_sequence
from vcodec.io import open_video


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", nargs="?", help="input video (default: the bundled 416x240 clip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--base-model", help="base model id or .json (default: the shipped default)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clip = args.clip or str(bundled_sequence())
    with open_video(clip, frames=args.frames) as reader:
        info = reader.info
        frames = list(reader)
    buf = io.BytesIO()
    times = []
    with Encoder(buf, info, base_model=args.base_model, threads=args.threads) as enc:
        for f in frames:
            t0 = time.perf_counter()
            enc.encode(f)
            times.append(time.perf_counter() - t0)
    steady = times[2:] or times
    out = {"clip": Path(clip).name, "size": f"{info.width}x{info.height}", "frames": len(frames),
           "threads": args.threads, "encode_fps": len(steady) / sum(steady)}
    data = buf.getvalue()
    for key, layers, method in (
        ("full_decode_fps", "all", "frames"),
        ("base_detect_fps", "base", "detections"),
    ):
        for _ in range(2):  # the second run is reported: caches and allocator warm
            t0 = time.perf_counter()
            with Decoder(data, layers=layers, threads=args.threads) as dec:
                n = sum(1 for _ in getattr(dec, method)())
            dt = time.perf_counter() - t0
        out[key] = n / dt
    for k, v in out.items():
        print(f"{k:16s} {v:.1f}" if isinstance(v, float) else f"{k:16s} {v}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
