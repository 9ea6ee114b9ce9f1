#!/usr/bin/env python3
"""Measure read and write throughput of vcodec.io (frames per second, wall clock).

Reads the bundled clip and, when present, the real clips in ../shared/data/clips/;
writes the bundled clip back as Y4M, raw YUV, H.264 MP4 and H.265 MKV.

    python tools/bench_io.py [--frames N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from vcodec.io import open_video, open_writer

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"


def bench_read(path: Path, frames: int | None) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    with open_video(path, frames=frames) as r:
        for _ in r:
            n += 1
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60, help="frames read per clip at most")
    args = ap.parse_args(argv)
    inputs = [ROOT / "sequences" / "synthetic_416x240_30.y4m"]
    if CLIPS.is_dir():
        inputs += sorted(p for p in CLIPS.iterdir() if p.suffix in (".yuv", ".i420", ".264", ".mp4"))
    print(f"{'read':<48} {'frames':>6} {'fps':>9}")
    for p in inputs:
        n, dt = bench_read(p, args.frames)
        print(f"{p.name:<48} {n:>6} {n / dt:>9.1f}")
    with open_video(inputs[0]) as r:
        info, frames = r.info, list(r)
    print(f"\n{'write ' + inputs[0].name:<48} {'frames':>6} {'fps':>9} {'bytes':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in (
            ("out.y4m", {}), ("out_416x240_30.yuv", {}), ("out.mp4", {"codec": "h264"}),
            ("out.mkv", {"codec": "h265"}),
        ):
            out = Path(tmp) / name
            t0 = time.perf_counter()
            with open_writer(out, info, **kw) as wr:  # type: ignore[arg-type]
                for f in frames:
                    wr.write(f)
            dt = time.perf_counter() - t0
            print(f"{name + ' ' + str(kw.get('codec', '')):<48} {len(frames):>6} "
                  f"{len(frames) / dt:>9.1f} {os.path.getsize(out):>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
