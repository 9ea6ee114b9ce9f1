#!/usr/bin/env python3
"""GOP-parallel encode vs serial (issue 17 target: --workers 2 >= 1.6x on 2 cores).

Makes a 416x240 clip of --frames frames (default 128, from ../shared's
car-detection.mp4, else the bundled synthetic sequence, looped), then times the
whole command, end to end (start-up, model loading, Ray start included):

  vcodec encode CLIP -o serial.vcs   --closed-gops --enh-qp QP --intra-period 32 -q
  vcodec encode CLIP -o parallel.vcs --workers 2   --enh-qp QP --intra-period 32 -q
  (with --one-thread also the serial command with --threads 1: torch on one thread, as in
  a Ray worker, which separates the gain of parallel GOPs from that of not oversubscribing)

alternating, --repeats times, and reports the median times, the speed-up, whether
the two streams are byte-identical, and the load average (the machine may be shared).

  python tools/bench_cluster.py [--frames 128] [--repeats 2] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIP = REPO.parent / "shared" / "data" / "clips" / "car-detection.mp4"


def make_clip(path: Path, frames: int) -> str:
    import av
    import numpy as np

    src = SHARED_CLIP if SHARED_CLIP.is_file() else REPO / "sequences" / "synthetic_416x240_30.y4m"
    out = []
    while len(out) < frames:
        with av.open(str(src)) as c:
            for f in c.decode(video=0):
                planes = f.reformat(416, 240, "yuv420p").to_ndarray()
                out.append(np.ascontiguousarray(planes).tobytes())
                if len(out) == frames:
                    break
    path.write_bytes(b"".join(out))
    return src.name


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--extra", default="", help="more encode options, e.g. '--preset fast'")
    ap.add_argument("--one-thread", action="store_true", help="also time serial with --threads 1")
    ap.add_argument("--json", help="write the result here too")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        clip = Path(tmp) / "clip_416x240_30.yuv"
        source = make_clip(clip, a.frames)
        common = ["--enh-qp", str(a.qp), "--intra-period", str(a.intra_period), "-q", *a.extra.split()]
        serial_cmd = [sys.executable, "-m", "vcodec", "encode", str(clip), "-o", f"{tmp}/serial.vcs",
                      "--closed-gops", *common]
        par_cmd = [sys.executable, "-m", "vcodec", "encode", str(clip), "-o", f"{tmp}/parallel.vcs",
                   "--workers", str(a.workers), *common]
        load_before = os.getloadavg()
        ts, tp, t1 = [], [], []
        for _ in range(a.repeats):
            ts.append(timed(serial_cmd))
            tp.append(timed(par_cmd))
            if a.one_thread:
                t1.append(timed([*serial_cmd, "--threads", "1"], os.environ | {"OMP_NUM_THREADS": "1"}))
            print(f"serial {ts[-1]:.1f} s, parallel {tp[-1]:.1f} s"
                  + (f", serial --threads 1 {t1[-1]:.1f} s" if t1 else "")
                  + f", load {os.getloadavg()[0]:.2f}",
                  file=sys.stderr)
        identical = Path(f"{tmp}/serial.vcs").read_bytes() == Path(f"{tmp}/parallel.vcs").read_bytes()
        s, p = statistics.median(ts), statistics.median(tp)
        result = {
            "clip": f"{a.frames} frames 416x240 from {source}", "intra_period": a.intra_period, "qp": a.qp,
            "workers": a.workers, "cpus": os.cpu_count(), "serial_s": [round(t, 2) for t in ts],
            "parallel_s": [round(t, 2) for t in tp], "speedup_median": round(s / p, 3),
            "byte_identical": identical,
            **({"serial_1thread_s": [round(t, 2) for t in t1],
                "speedup_vs_1thread_median": round(statistics.median(t1) / p, 3)} if t1 else {}),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        }
    print(json.dumps(result, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
