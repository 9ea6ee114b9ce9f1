"""Benchmark of the enhancement layer: residual path vs. single-layer anchor.

For each clip, the enhancement layer codes the residual against a flat grey
base (x_base = 128 on every plane, i.e. no base information at all) and, for
comparison, the single-layer anchor codes the frames themselves, with the same
encoder, preset and QP.  With a flat base both carry the same information, so
any difference at equal PSNR is the cost of the residual mapping (offset,
10-bit container).  The Bjontegaard delta rate (cubic fit of log-rate against
PSNR, averaged over the overlapping PSNR interval) summarises it; the issue
requires it to be at most +3 %.

Usage::

    python tools/bench_enhancement.py                       # both clips, libx265 medium, 1 thread
    python tools/bench_enhancement.py --preset ultrafast --frames 10 --json out.json

Prints a markdown table and writes JSON (default ``bench_enhancement.json``).
Clips are read from ``../shared/data/clips`` next to the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vcodec.enhancement import EnhancementEncoder, decode_sequence, frame_psnr, reconstruct
from vcodec.io.frame import Frame

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "data" / "clips"


def load_clip(name: str, frames: int | None) -> tuple[list[Frame], Fraction]:
    """Read a clip with vcodec's readers (cars_320x240 has no size in its name)."""
    from vcodec.io import open_video

    path = CLIPS / name
    size = (320, 240) if name.startswith("cars_320x240") else None
    fps = Fraction(30) if name.endswith(".i420") else None
    with open_video(path, size=size, fps=fps, frames=frames) as reader:
        out = list(reader)
        rate = Fraction(reader.info.fps)
    return out, rate


def bd_rate(r_anchor: list[float], q_anchor: list[float], r_test: list[float], q_test: list[float]) -> float:
    """Bjontegaard delta rate in percent (negative: the test needs fewer bits at equal quality)."""
    la, lt = np.log(r_anchor), np.log(r_test)
    pa = np.polyfit(q_anchor, la, 3)
    pt = np.polyfit(q_test, lt, 3)
    lo = max(min(q_anchor), min(q_test))
    hi = min(max(q_anchor), max(q_test))
    if hi <= lo:
        return float("nan")
    ia = np.polyval(np.polyint(pa), hi) - np.polyval(np.polyint(pa), lo)
    it = np.polyval(np.polyint(pt), hi) - np.polyval(np.polyint(pt), lo)
    return float((math.exp((it - ia) / (hi - lo)) - 1) * 100)


def run_point(
    frames: list[Frame], fps: Fraction, qp: int, anchor: bool, codec: str, preset: str, threads: int
) -> dict[str, Any]:
    w, h = frames[0].width, frames[0].height
    base = None if anchor else Frame.blank(w, h)
    t0 = time.perf_counter()
    enc = EnhancementEncoder(w, h, fps=fps, codec=codec, qp=qp, preset=preset, threads=threads, anchor=anchor)
    packets = []
    for f in frames:
        packets += enc.encode(f, base)
    packets += enc.flush()
    t_enc = time.perf_counter() - t0
    cfg, ed = enc.config(), enc.extradata
    enc.close()
    t0 = time.perf_counter()
    decoded = decode_sequence(codec, cfg, ed, packets)
    recs = [reconstruct(base, r) for _, r in decoded]
    t_dec = time.perf_counter() - t0
    if [i for i, _ in decoded] != list(range(len(frames))):
        raise RuntimeError("decoded frame indexes are not 0..n-1 in order")
    psnrs = [frame_psnr(x, xh) for x, xh in zip(frames, recs, strict=True)]
    bits = 8 * (len(ed) + sum(len(p.to_payload()) for p in packets))
    return {
        "mode": "anchor" if anchor else "residual",
        "qp": qp,
        "frames": len(frames),
        "bits": bits,
        "kbps": bits * float(fps) / len(frames) / 1000,
        "psnr_y": float(np.mean([p[0] for p in psnrs])),
        "psnr_yuv": float(np.mean([p[1] for p in psnrs])),
        "encode_fps": len(frames) / t_enc,
        "decode_fps": len(frames) / t_dec,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", default="libx265")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--qps", default="22,27,32,37")
    ap.add_argument(
        "--frames", type=int, default=None, help="cap frames per clip (default: 30 cars, 60 person)"
    )
    ap.add_argument("--json", default="bench_enhancement.json")
    args = ap.parse_args(argv)
    if not CLIPS.is_dir():
        print(f"clips folder {CLIPS} not found", file=sys.stderr)
        return 1
    qps = [int(q) for q in args.qps.split(",")]
    clips = [("cars_320x240.i420", 30), ("one-by-one-person-detection.mp4", 60)]
    results: dict[str, Any] = {
        "codec": args.codec, "preset": args.preset, "threads": args.threads, "qps": qps, "clips": {},
    }
    lines = [
        f"Enhancement layer, {args.codec} preset {args.preset}, {args.threads} thread(s); "
        "residual = flat grey base (128)",
        "",
        "| clip | mode | QP | kbit/s | PSNR-Y | PSNR-YUV | enc fps | dec fps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for name, default_n in clips:
        frames, fps = load_clip(name, args.frames or default_n)
        rows = []
        for anchor in (True, False):
            for qp in qps:
                r = run_point(frames, fps, qp, anchor, args.codec, args.preset, args.threads)
                rows.append(r)
                lines.append(
                    f"| {name} ({frames[0].width}x{frames[0].height}, {len(frames)} fr) | "
                    f"{r['mode']} | {qp} | "
                    f"{r['kbps']:.1f} | {r['psnr_y']:.2f} | {r['psnr_yuv']:.2f} | "
                    f"{r['encode_fps']:.1f} | {r['decode_fps']:.1f} |"
                )
                print(lines[-1], file=sys.stderr, flush=True)
        a = [r for r in rows if r["mode"] == "anchor"]
        t = [r for r in rows if r["mode"] == "residual"]
        bd_y = bd_rate(
            [r["kbps"] for r in a], [r["psnr_y"] for r in a], [r["kbps"] for r in t], [r["psnr_y"] for r in t]
        )
        bd_yuv = bd_rate(
            [r["kbps"] for r in a],
            [r["psnr_yuv"] for r in a],
            [r["kbps"] for r in t],
            [r["psnr_yuv"] for r in t],
        )
        results["clips"][name] = {"fps": str(fps), "points": rows, "bd_rate_y": bd_y, "bd_rate_yuv": bd_yuv}
        summary.append(
            f"| {name} | {bd_y:+.2f} % | {bd_yuv:+.2f} % | {'yes' if max(bd_y, bd_yuv) <= 3.0 else 'NO'} |"
        )
    lines += [
        "",
        "BD-rate of the residual path against the anchor (bits at equal PSNR; target <= +3 %):",
        "",
        "| clip | BD-rate (PSNR-Y) | BD-rate (PSNR-YUV) | within 3 % |",
        "|---|---|---|---|",
        *summary,
    ]
    print("\n".join(lines))
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
