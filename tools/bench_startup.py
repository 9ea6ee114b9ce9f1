#!/usr/bin/env python3
"""Start-up time of the ``vcodec`` command, measured from outside (issue 16's targets).

Two kinds of command, each started as a fresh process ``--repeat`` times (median reported):

* commands that run no model (``vcodec --help``, ``info``, ``extract``, ``decode --help``):
  wall time of the whole process; target under 0.5 s;
* model commands (full decode, base-only decode): seconds from starting the process to the
  first decoded frame arriving on its standard output (``-o -``, Y4M: the ``FRAME`` marker
  plus one picture); target under 1.5 s on an idle machine.

Then ``python -X importtime`` of the base-layer decode lists the costliest imports (cumulative
microseconds, as Python reports them) and checks that compressai's datasets/zoo and
torch_geometric are not among them.

    python tools/bench_startup.py                      # bundled clip, 5 runs each
    python tools/bench_startup.py --repeat 9 --json startup.json

The machine should be idle: on shared cores every wall figure grows with the load (printed);
the CPU seconds of each process (user + system) are what an idle machine's wall time would be
for this single-threaded start-up work, and the targets are checked against them.
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

ROOT = Path(__file__).resolve().parents[1]
VCODEC = [sys.executable, "-m", "vcodec"]
#: modules that must never be imported on any vcodec path (seconds each, for nothing)
FORBIDDEN = ("torch_geometric", "compressai.datasets", "compressai.zoo")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _cpu(proc: subprocess.Popen[bytes]) -> float:
    """User + system CPU seconds of the finished (or killed) child: on shared cores, what an idle
    machine's wall time would be for single-threaded start-up work."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def wall(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the whole process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    cpu = _cpu(proc)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit code {proc.returncode}")
    return dt, cpu


def first_frame(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds until the first Y4M frame (header line, FRAME line, picture) is on stdout.

    The CPU time is read after the process is killed, a few milliseconds later: an upper bound.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    assert proc.stdout is not None
    header = proc.stdout.readline()
    fields = dict((f[0], f[1:]) for f in header.decode("ascii").split()[1:])
    width, height = int(fields["W"]), int(fields["H"])
    proc.stdout.readline()  # FRAME
    need = width * height * 3 // 2
    got = 0
    while got < need:
        chunk = proc.stdout.read1(need - got)  # type: ignore[attr-defined]  # a BufferedReader
        if not chunk:
            raise RuntimeError(f"{' '.join(cmd)}: output ended before the first frame")
        got += len(chunk)
    dt = time.perf_counter() - t0
    proc.kill()
    return dt, _cpu(proc)


def importtime(cmd: list[str], top: int) -> tuple[list[tuple[int, str]], list[str]]:
    """(the ``top`` costliest top-level imports by cumulative us, forbidden modules seen)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=_env(), check=True)
    rows: list[tuple[int, str, int]] = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(cumulative), name.strip(), depth))
    seen = sorted({n for _, n, _ in rows if n.split(".")[0] in FORBIDDEN or n in FORBIDDEN
                   or any(n.startswith(f + ".") for f in FORBIDDEN)})
    shallow = sorted(((c, n) for c, n, d in rows if d <= 2), reverse=True)
    return shallow[:top], seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per command (median reported)")
    ap.add_argument("--frames", type=int, default=4, help="frames of the bundled clip to encode first")
    ap.add_argument("--top", type=int, default=12, help="costliest imports to list")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    clip = ROOT / "sequences" / "synthetic_416x240_30.y4m"
    with tempfile.TemporaryDirectory() as tmp:
        stream, base = Path(tmp) / "s.vcs", Path(tmp) / "b.vcs"
        subprocess.run([*VCODEC, "encode", str(clip), "--frames", str(args.frames), "-o", str(stream), "-q"],
                       check=True, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        plain = {
            "vcodec --help": [*VCODEC, "--help"],
            "vcodec decode --help": [*VCODEC, "decode", "--help"],
            "vcodec serve --help": [*VCODEC, "serve", "--help"],
            "vcodec info STREAM": [*VCODEC, "info", str(stream)],
            "vcodec extract STREAM": [*VCODEC, "extract", str(stream), "-o", str(base), "--layers", "base"],
        }
        model = {
            "vcodec decode STREAM -o - (full)": [*VCODEC, "decode", str(stream), "-o", "-", "-q"],
            "vcodec decode STREAM -o - --layers base": [*VCODEC, "decode", str(stream), "-o", "-", "-q",
                                                        "--layers", "base"],
        }
        load = os.getloadavg()[0]
        results: dict[str, dict[str, float | str]] = {}
        for kind, target, commands, measure in (("whole process", 0.5, plain, wall),
                                                 ("to first frame", 1.5, model, first_frame)):
            for name, cmd in commands.items():
                measure(cmd)  # warm the page cache
                runs = [measure(cmd) for _ in range(args.repeat)]
                results[name] = {"kind": kind, "median_s": statistics.median(r[0] for r in runs),
                                 "min_s": min(r[0] for r in runs),
                                 "cpu_median_s": statistics.median(r[1] for r in runs), "target_s": target}
        # the base layer is the model command (a full decode of an inter-layer-off stream needs no model)
        top, forbidden = importtime(model["vcodec decode STREAM -o - --layers base"], args.top)
    print(f"start-up, {args.repeat} runs each, load average {load:.2f} on {os.cpu_count()} CPUs "
          f"(OMP_NUM_THREADS={_env()['OMP_NUM_THREADS']})")
    head = f"{'wall median':>11s} {'wall min':>9s} {'CPU median':>10s}"
    print(f"  {'command':42s} {'measured':15s} {head}  target")
    for name, r in results.items():
        ok = "ok" if float(r["cpu_median_s"]) < float(r["target_s"]) else "OVER"
        print(f"  {name:42s} {r['kind']:15s} {float(r['median_s']):9.3f} s {float(r['min_s']):7.3f} s "
              f"{float(r['cpu_median_s']):8.3f} s  < {r['target_s']} s (CPU): {ok}")
    print("costliest imports of the base-layer decode (python -X importtime, cumulative, wall under load):")
    for us, name in top:
        print(f"  {us / 1e6:7.3f} s  {name}")
    print(f"forbidden modules imported: {', '.join(forbidden) if forbidden else 'none'}")
    if args.json:
        imports = [{"module": n, "cumulative_s": us / 1e6} for us, n in top]
        args.json.write_text(json.dumps({"load_average": load, "results": results, "imports": imports,
                                         "forbidden_imported": forbidden}, indent=2) + "\n")
    return 1 if forbidden else 0


if __name__ == "__main__":
    sys.exit(main())
