"""Analytics over the network: fetch only the base layer of a served stream, detect as it arrives.

Asks `vcodec serve` for layers=base (the enhancement layer never crosses the
network), decodes each base unit and runs the detector on the decoded latent
(no pixels), frame by frame as data arrives, writing MOTChallenge lines
(frame,-1,left,top,width,height,score,-1,-1,-1; frames 1-based) and a live
progress line on stderr.  With --track, a tracker (IoU + Kalman, SORT-style)
gives every box an id: frame,id,left,top,width,height,1,-1,-1,-1.

When the connection drops it reconnects: on a live stream it resumes at the
next intra frame (the frames in between are reported as skipped); on a
stored stream it resumes where it stopped, so the output equals an
uninterrupted run (and `vcodec detect` on the same stream).

Examples:
  vcodec analyze http://127.0.0.1:8080/streams/cam1 -o dets.txt
  vcodec analyze http://cam-server:8080/streams/cam1 --track --token-env CAM_TOKEN -o tracks.txt
  vcodec analyze http://127.0.0.1:8080/streams/clip --frames 300

The detector is the one of the stream's base model (YOLOX-Nano for the default
model, its weights shipped), with the back end adapted to that model's decoded
features when one ships; --weights only for base models whose detector is not
shipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence

from vcodec._atomic import AtomicOutput
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError

HELP = "detect (and track) objects on a served stream's base layer as it arrives"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="stream URL, e.g. http://127.0.0.1:8080/streams/cam1")
    parser.add_argument("-o", "--output", default="-", help="MOTChallenge .txt output (default: stdout)")
    parser.add_argument("--track", action="store_true", help="track objects: write track ids")
    parser.add_argument("--token", help="bearer token (a base-layer token is enough)")
    parser.add_argument("--token-env", metavar="VAR", help="read the token from environment variable VAR "
                                                          "(default: VCODEC_TOKEN when set)")
    parser.add_argument("--weights", help="detector weights for base models whose detector is not shipped "
                                          "(yolox-nano and vcodec-det are)")
    parser.add_argument("--base-model", help="base model .json/.pt when it is not installed")
    parser.add_argument("--score-threshold", type=float, help="minimum score (default: the detector's, 0.3)")
    parser.add_argument("--frames", type=int, help="stop after N frames")
    parser.add_argument("--retries", type=int, default=5,
                        help="consecutive failed reconnection attempts before giving up (default 5)")
    parser.add_argument("--retry-wait", type=float, default=1.0, help="seconds between attempts (default 1)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds without data before the connection counts as dropped (default 30)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line or summary")


def run(args: argparse.Namespace) -> int:
    from vcodec.serve.analyze import analyze_url, progress_printer
    from vcodec.serve.client import is_url

    if not is_url(args.url):
        raise ConfigError(f"{args.url!r} is not an http:// URL; for a file use `vcodec detect {args.url}`")
    token = args.token
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise ConfigError(f"--token-env {args.token_env}: the variable is empty or not set")
    # MOT lines go to the final name frame by frame (others may follow them); a failed run removes it
    sink = AtomicOutput(args.output, what="analyze output", in_place=True)
    out = io.TextIOWrapper(sink.stream, encoding="utf-8", newline="\n", write_through=True)
    show = None if args.quiet or not sys.stderr.isatty() else progress_printer(sys.stderr)
    try:
        stats = analyze_url(args.url, token=token, out=out, track=args.track, weights=args.weights,
                            base_model=args.base_model, score_threshold=args.score_threshold,
                            threads=args.threads, retries=args.retries, retry_wait=args.retry_wait,
                            timeout=args.timeout, max_frames=args.frames, progress=show)
        out.detach()  # the text layer lets go: closing stdout or the sink's file is not its job
    except BaseException:
        sink.abort()
        with contextlib.suppress(OSError, ValueError):  # text that can no longer go out: the run failed
            out.detach()
        raise
    sink.commit()
    if not args.quiet:
        if show is not None:
            sys.stderr.write("\n")
        span = "-" if stats.first_frame is None else f"{stats.first_frame}..{stats.last_frame}"
        print(f"vcodec analyze: {stats.frames} frames ({span}), {stats.detections} detections, "
              f"{stats.fps:.1f} frames/s, {stats.bytes_received} bytes received (base layer), "
              f"{stats.reconnects} reconnects, {stats.skipped} frames skipped -> "
              f"{args.output if args.output != '-' else 'stdout'}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("analyze", argv)
