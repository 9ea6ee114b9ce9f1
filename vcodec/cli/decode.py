"""Decode a vcodec stream into pictures.

--layers all (default): the full pictures for people, x_base + residual.
--layers base: the coarse picture x_base alone (what the base layer carries;
also the only choice for a base-only stream from `vcodec extract`).

Examples:
  vcodec decode clip.vcs -o clip.y4m
  vcodec decode clip.vcs -o clip.mp4 --layers base
  vcodec decode damaged.vcs -o out.y4m --conceal
  vcodec encode in.mp4 -o - | vcodec decode - -o - | ffplay -
  vcodec decode clip.vcs -o clip.y4m --annotate seen.mp4   # + what the base layer detects, drawn

--annotate OUT.mp4|OUT.mkv|DIR also writes the decoded pictures with the detections of the
base layer (layer 0 alone, as `vcodec detect` makes them) boxed and labelled: a video, or
one PNG per frame in DIR.  It reads the stream twice, so it needs a file, not - or a URL.

Output by extension: .y4m (lossless, default for -), .yuv (raw I420), .mp4 /
.mkv (x264 for viewing).  The file is written under a temporary name and
renamed when complete; on error nothing is left behind.

Damaged streams: without --conceal the first defect stops decoding with the
frame and byte offset.  With --conceal a damaged layer skips to its next
intra frame: frames whose base is lost repeat the last good picture, frames
whose enhancement is lost show x_base; the lost frames are listed on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from vcodec._frame_ranges import format_frame_ranges, frame_ranges
from vcodec.cli._io import write_json_report
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError

if TYPE_CHECKING:
    from vcodec.codec.decoder import StreamInput

HELP = "decode a stream: full pictures (people) or the base layer's coarse picture"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", help="input .vcs stream, a `vcodec serve` URL, or - for stdin")
    parser.add_argument(
        "-o", "--output", required=True, help="OUT.y4m, OUT.yuv, OUT.mp4/.mkv, or - (Y4M on stdout)"
    )
    parser.add_argument("--layers", choices=("all", "base"), default="all",
                        help="all = x_base + residual (default); base = x_base only")
    parser.add_argument("--conceal", action="store_true", help="conceal damaged units instead of failing")
    parser.add_argument("--token", help="bearer token for a `vcodec serve` URL")
    parser.add_argument("--base-model", help=".json/.pt of the base weights when they are not installed")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0 = default); results do not depend on it"
    )
    parser.add_argument("--crf", type=int, help="quality of MP4/MKV output (x264 CRF, default 23)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write a summary as JSON (to stderr, or FILE)")
    parser.add_argument("--annotate", metavar="OUT.mp4|DIR",
                        help="also write the pictures with the base layer's detections drawn "
                        "(a video, or PNGs in a folder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def run(args: argparse.Namespace) -> int:
    from vcodec.codec import Decoder
    from vcodec.io import open_writer

    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {args.threads}")
    show = not (args.quiet or args.no_progress)
    t0 = time.perf_counter()
    from vcodec.cli._args import is_url

    source: StreamInput = args.stream
    if args.annotate and (args.stream == "-" or is_url(args.stream)):
        raise ConfigError("--annotate reads the stream twice (pictures, then the base layer's detections); "
                          "save it to a file first: vcodec decode clip.vcs -o out.y4m --annotate out.mp4")
    if is_url(args.stream):
        from vcodec.serve.client import open_url

        source = open_url(args.stream, layers=args.layers, token=args.token)
    with Decoder(source, layers=args.layers, conceal=args.conceal, threads=args.threads,
                 base_model=args.base_model) as dec, _annotation(args, dec.info) as annotate:
        info = dec.info
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=info.num_frames, unit="frame", desc="decode", file=sys.stderr, leave=False)
        count = 0
        with open_writer(args.output, info, crf=args.crf) as writer:
            for frame in dec.frames():
                writer.write(frame)
                if annotate is not None:
                    annotate(frame)
                count += 1
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        lost, coarse = list(dec.lost_frames), list(dec.coarse_frames)
        damage = dec.damage
    dt = time.perf_counter() - t0
    report = {"frames": count, "layers": args.layers, "seconds": dt, "fps": count / dt if dt > 0 else 0.0,
              "lost_frames": lost, "coarse_frames": coarse, "damage": [d.message for d in damage]}
    if not args.quiet:
        target = "stdout" if args.output == "-" else args.output
        print(
            f"vcodec decode: {count} frames ({args.layers} layers) -> {target}, {report['fps']:.1f} frames/s",
            file=sys.stderr,
        )
        if damage:
            print(f"  concealed {len(damage)} damaged region(s): {len(lost)} frame(s) lost "
                  f"{_ranges(lost)}, {len(coarse)} shown as base picture {_ranges(coarse)}", file=sys.stderr)
    if args.json:
        write_json_report(args.json, report)
    return 0


@contextmanager
def _annotation(args: argparse.Namespace, info: Any) -> Iterator[Callable[[Any], None] | None]:
    """``--annotate``: a function drawing the base layer's detections on each decoded picture."""
    if not args.annotate:
        yield None
        return
    from vcodec.annotate import AnnotatedOutput, ByIndex, draw_detections
    from vcodec.codec import Decoder

    with Decoder(args.stream, layers="base", conceal=args.conceal, threads=args.threads,
                 base_model=args.base_model) as base, AnnotatedOutput(args.annotate, info.fps) as out:
        dets = ByIndex(base.detections())

        def annotate(frame: Any) -> None:
            out.write(draw_detections(frame, dets.get(frame.index)), index=frame.index)

        yield annotate


def _ranges(frames: list[int]) -> str:
    """[1, 2, 3, 7] -> '(1-3, 7)'."""
    return f"({format_frame_ranges(frame_ranges(frames))})" if frames else ""


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("decode", argv)


if __name__ == "__main__":
    sys.exit(main())
