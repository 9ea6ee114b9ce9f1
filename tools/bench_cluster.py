#!/usr/bin/env python3
"""GOP-parallel encode vs serial (issue 17 target: --workers 2 >= 1.6x on 2 cores).

Makes a 416x240 clip of --frames frames (default 128, from ../shared's
car-detection.mp4, else the bundled synthetic sequence, looped), then times the
whole command, end to end (start-up, model loading, Ray start included):

  vcodec encode CLIP -o serial.vcs   --closed-gops --enh-qp QP --intra-period 32 -q
  vcodec encode CLIP -o parallel.vcs --workers 2   --enh-qp QP --intra-period 32 -q
  (with --one-thread both again with --threads 1: torch and x265 on one thread each, which
  separates the gain of parallel GOPs from that of not oversubscribing a loaded machine)

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


def _head_runs(a: argparse.Namespace, par_cmd: list[str], tmp: str) -> tuple[list[float], bool]:
    """--ray against a head on this machine (started and stopped here, by its process group)."""
    import signal
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="vb", dir="/tmp")
    env = os.environ | {"OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={a.workers}",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        time.sleep(20)  # the head's start-up is not part of the timing
        cmd = [*par_cmd[:6], f"{tmp}/head.vcs", *par_cmd[7:]]
        i = cmd.index("--workers")
        cmd[i:i + 2] = ["--ray", f"127.0.0.1:{port}", "--threads", "1"]
        runs = [timed(cmd, env) for _ in range(a.repeats)]
        print(f"--ray (running head), threads 1: {runs[-1]:.1f} s", file=sys.stderr)
        same = Path(f"{tmp}/head.vcs").read_bytes() == Path(f"{tmp}/serial1.vcs").read_bytes()
        return runs, same
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--extra", default="", help="more encode options, e.g. '--preset fast'")
    ap.add_argument("--one-thread", action="store_true", help="also time both with --threads 1")
    ap.add_argument("--head", action="store_true",
                    help="also time --ray against a local head started beforehand (no Ray start-up in the "
                    "timing: what a running cluster gives), with --threads 1")
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
        # threads "" = the defaults (torch: all cores; x265: auto); "1" = --threads 1 (torch and x265 on
        # one thread; x265's output depends on its thread count, so each pair compares equal settings)
        variants = ["", "1"] if a.one_thread else [""]
        times: dict[str, dict[str, list[float]]] = {v: {"serial": [], "parallel": []} for v in variants}
        identical: dict[str, bool] = {}
        for _ in range(a.repeats):
            for v in variants:
                extra = ["--threads", v] if v else []
                env = os.environ | {"OMP_NUM_THREADS": v} if v else None
                for kind, cmd in (("serial", serial_cmd), ("parallel", par_cmd)):
                    out = f"{tmp}/{kind}{v}.vcs"
                    times[v][kind].append(timed([*cmd[:6], out, *cmd[7:], *extra], env))
                pair = [Path(f"{tmp}/{kind}{v}.vcs").read_bytes() for kind in ("serial", "parallel")]
                identical[v] = pair[0] == pair[1]
                print(f"threads {v or 'default'}: serial {times[v]['serial'][-1]:.1f} s, parallel "
                      f"{times[v]['parallel'][-1]:.1f} s, identical {identical[v]}, "
                      f"load {os.getloadavg()[0]:.2f}",
                      file=sys.stderr)
        head_runs: list[float] = []
        if a.head:
            head_runs, identical["head"] = _head_runs(a, par_cmd, tmp)
        result = {
            "clip": f"{a.frames} frames 416x240 from {source}", "intra_period": a.intra_period, "qp": a.qp,
            "workers": a.workers, "cpus": os.cpu_count(),
            "runs": {v or "default": {
                "serial_s": [round(t, 2) for t in times[v]["serial"]],
                "parallel_s": [round(t, 2) for t in times[v]["parallel"]],
                "speedup_median": round(statistics.median(times[v]["serial"])
                                        / statistics.median(times[v]["parallel"]), 3),
                "byte_identical": identical[v]} for v in variants},
            **({"ray_head_threads1": {"parallel_s": [round(t, 2) for t in head_runs],
                                      "speedup_vs_serial_threads1": round(
                                          statistics.median(times["1"]["serial"])
                                          / statistics.median(head_runs), 3) if "1" in times else None,
                                      "byte_identical": identical["head"]}} if head_runs else {}),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
    print(json.dumps(result, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
