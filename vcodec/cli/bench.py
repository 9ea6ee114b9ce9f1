"""Measure vcodec's speed and memory per stage beside single-layer x265, in the same run.

  vcodec bench clip.y4m --frames 30 -o bench.json
  vcodec bench cars_320x240.i420 --base-model base-yolox-nano-v2 --detector-weights yolox_nano.onnx

Stages: base encode (the payload alone, as analytics-only streams and full-frame
GOPs code it; then again with the base picture a residual GOP predicts from),
enhancement encode, base-only decode + detect (detector
back end on the decoded latent, no pixels), full decode, and x265 single-layer
encode, decode and decode + detect of the same frames at the same QP, preset
and intra period.  Each stage runs --repeat times (default 3) and reports the
median run's seconds, frames/s and ms/frame (every run in runs_seconds) and
peak resident memory (MiB); ratios compare vcodec with x265 (below 1 = vcodec is
faster).  Models are loaded and warmed up before timing; --threads fixes the
torch and encoder threads (default 1, for numbers that do not depend on the
machine's load).  The JSON report goes to -o FILE or to standard output.
"""

from __future__ import annotations

import argparse
import json
import sys

from vcodec._atomic import atomic_output
from vcodec.cli._args import add_input_size
from vcodec.cli.main import subcommand_main

HELP = "speed (frames/s, ms/frame) and memory per stage beside x265 (JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file or image folder")
    parser.add_argument("-o", "--output", default="-", help="JSON report file (default: standard output)")
    parser.add_argument("--frames", type=int, default=30, help="frames to code (default 30)")
    parser.add_argument("--start", type=int, default=0, help="skip the first N frames")
    add_input_size(parser)
    parser.add_argument("--base-model", help="base model id or .json/.pt path (default: the shipped one)")
    parser.add_argument(
        "--base-quality", type=float, default=None,
        help="0..1, higher = more bits (default: the base model's own operating point, "
             "0.25 for base-yolox-nano-v3, else 0.5)"
    )
    parser.add_argument(
        "--base-effort", choices=("faster", "fast", "slow"), default="fast",
        help="base encoder effort as in vcodec encode (default fast; faster: no motion search)"
    )
    parser.add_argument(
        "--detector-weights", help="weights of the base model's detector when not shipped (.onnx)"
    )
    parser.add_argument(
        "--qp", type=int, default=32, help="QP of the enhancement layer and of x265 (default 32)"
    )
    parser.add_argument(
        "--codec", default="libx265", help="enhancement / single-layer encoder (default libx265)"
    )
    parser.add_argument("--preset", default="medium", help="encoder preset (default medium)")
    parser.add_argument("--intra-period", type=int, default=32, help="intra period (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch and encoder threads (default 1)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per stage; the report gives the median run and lists all (default 3)")


def run(args: argparse.Namespace) -> int:
    from vcodec.eval.bench import run_bench

    report = run_bench(
        args.input,
        frames=args.frames,
        start=args.start,
        size=args.input_size,
        base_model=args.base_model,
        base_quality=args.base_quality,
        detector_weights=args.detector_weights,
        qp=args.qp,
        codec=args.codec,
        preset=args.preset,
        intra_period=args.intra_period,
        threads=args.threads,
        base_effort=args.base_effort,
        repeat=args.repeat,
    )
    text = json.dumps(report, indent=1, sort_keys=True) + "\n"
    with atomic_output(args.output) as f:  # "-" is stdout
        f.write(text.encode())
    lines = [
        f"{k:20s} {v['frames_per_s']:8.2f} frames/s {v['ms_per_frame']:9.1f} ms/frame "
        f"{v['peak_rss_mib']:8.1f} MiB"
        for k, v in report["stages"].items()
    ]
    lines += [f"{k}: {v}" for k, v in report["ratios"].items()]
    print("\n".join(lines), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return subcommand_main("bench", argv)


if __name__ == "__main__":
    sys.exit(main())
