"""Detect objects in a video with any registered split detector.

Reads a plain video (raw YUV named like clip_416x240_50.yuv, Y4M, MP4/MKV,
.264/.265, an image folder, or - for stdin) and writes one set of detections
per frame.  The default detector is YOLOX-Nano (80 COCO classes; Megvii's
weights, Apache-2.0, ship inside vcodec, see NOTICE).  Other detectors need the
user's weights file (never downloaded); vcodec-det's weights also ship:

  vcodec detect clip.mp4 -o dets.json
  vcodec detect clip_416x240_50.yuv --weights my_yolox_nano.pth -o dets.txt
  vcodec detect clip.mp4 --detector fasterrcnn-r50-fpn --weights frcnn.pth --format sfu -o out_dir

Output format (from the extension, or --format):
  .json  COCO results (image_id = 0-based frame index, category_id = COCO id 1..90)
  .txt   MOTChallenge detections (frame,-1,left,top,width,height,conf,-1,-1,-1; frames 1-based)
  DIR    SFU-HW-Objects: DIR/<input stem>_seq_NNN.txt with "cls xc yc w h" normalised
Without -o, COCO JSON goes to standard output.

A vcodec stream (a .vcs file, a base-only stream from `vcodec extract`, `-` fed
by `vcodec encode ... -o -`, or a `vcodec serve` URL) is recognised by its
first bytes: then ONLY the base layer is decoded and the detector's back end
runs on the features decoded from the latent, frame by frame as data arrives;
no pixels are reconstructed.  The detector is the one recorded with the
stream's base model, with the back end adapted to that model's decoded
features when one ships with it; --detector/--weights naming another detector
are refused:

  vcodec encode clip.mp4 -o - | vcodec detect - -o dets.txt
  vcodec detect clip.vcs --format sfu -o out_dir
  vcodec detect http://127.0.0.1:8080/streams/cam1 -o dets.json --token SECRET

Pictures up to 640 pixels wide/high are processed at their own resolution
padded to a multiple of 32 (the geometry the base layer uses); larger ones are
resized so that their long side is 416 (--det-size), keeping the aspect ratio
(--mode auto, the default).  --mode pad and --mode letterbox (a --det-size
square) force one or the other.  Boxes are always in input-picture pixels.
--size WxH is the size of raw YUV input, as in every command (--size N and
--input-size are the old spellings, accepted with a warning for one release).

--annotate OUT.mp4|OUT.mkv|DIR also writes the pictures with the detections boxed and
labelled (a video, or one PNG per frame in DIR): the input frames for plain video; for a
stream, the base layer's own coarse picture (what layer 0 alone reconstructs, read in a
second pass, so the stream must be a file):

  vcodec detect clip.mp4 -o dets.json --annotate seen.mp4
  vcodec detect clip.vcs -o dets.json --annotate seen_frames/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcodec.cli._args import add_input_size
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError

if TYPE_CHECKING:
    from vcodec.codec.decoder import StreamInput

HELP = "detect objects in a video, or from a stream's base layer alone (COCO JSON, MOT or SFU-HW output)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the detector registry imports torch; --help must not (the names are checked when the command runs)
    parser.add_argument("input", help="video file, image folder, vcodec stream, URL, or - for stdin")
    parser.add_argument("--detector", help="detector name (default yolox-nano; for a stream: its base "
                        "model's); also vcodec-det, yolox-tiny/s/m/l/x and the torchvision adapters "
                        "fasterrcnn-r50-fpn, fcos-r50-fpn, retinanet-r50-fpn (docs/DETECTION.md)")
    parser.add_argument("--weights", help="weights file (.pth/.pt, or .onnx for YOLOX); required except for "
                        "the detectors whose weights ship with vcodec (yolox-nano, vcodec-det)")
    parser.add_argument("--frames", type=int, help="process at most N frames")
    parser.add_argument("--start", type=int, default=0, help="skip the first N frames")
    parser.add_argument(
        "-o", "--output", default="-", help="FILE.json, FILE.txt or a directory (default: stdout, COCO JSON)"
    )
    parser.add_argument("--format", choices=("coco", "mot", "sfu"), help="output format (default: from -o)")
    parser.add_argument("--mode", choices=("auto", "pad", "letterbox"), default="auto",
                        help="picture geometry (default auto: pad up to 640 px, else resize to --det-size)")
    parser.add_argument("--det-size", dest="size", type=int, metavar="PIXELS",
                        help="letterbox size / long side (default: the detector's, 416)")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="minimum score (default 0.3)")
    parser.add_argument("--nms-threshold", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    add_input_size(parser, legacy=("size", "--det-size"))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--annotate", metavar="OUT.mp4|DIR",
                        help="also write the pictures with the detections drawn (video, or PNGs in a folder)")
    g = parser.add_argument_group("vcodec streams (base-layer analytics)")
    g.add_argument("--conceal", action="store_true",
                   help="skip damaged frames up to the next intra frame instead of failing")
    g.add_argument("--base-model", help=".json/.pt of the base weights when they are not installed")
    g.add_argument("--token", help="bearer token for a `vcodec serve` URL")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_frames(args: argparse.Namespace) -> Iterable:
    """Frames of the input (the plain-video path; the base-layer stream path plugs in here)."""
    from vcodec.io import open_video

    return open_video(args.input, size=args.input_size, start=args.start, frames=args.frames)


def build_detector(args: argparse.Namespace) -> Any:
    from vcodec.detection import DEFAULT_DETECTOR, DETECTORS, SHIPPED_DETECTORS, get_detector
    from vcodec.detection.shipped import has_shipped_weights

    name = args.detector or DEFAULT_DETECTOR
    if name not in DETECTORS:
        raise ConfigError(f"--detector {name} is not a registered detector; use one of "
                          f"{', '.join(DETECTORS.names())}")
    if args.weights is None and not has_shipped_weights(name):
        raise ConfigError(
            f"--detector {name} needs --weights FILE (vcodec never downloads weights); "
            f"{', '.join(SHIPPED_DETECTORS)} have weights built in"
        )
    return get_detector(
        name, args.weights, score_threshold=args.score_threshold, nms_threshold=args.nms_threshold
    )


def run_stream(args: argparse.Namespace) -> int:
    """The base-layer path: decode layer 0 only and run the back end on T(y_hat)."""
    from vcodec.cli._args import is_url
    from vcodec.codec import detect_stream

    if args.frames is not None or args.start:
        raise ConfigError("--frames/--start apply to plain video; a stream is analysed whole")
    # an explicit --detector is built here and checked against the stream's base model on the
    # first frame (a one-line error naming both); without it the base layer builds its own
    detector = build_detector(args) if args.detector is not None else None
    annotate = _stream_annotation(args)
    source: StreamInput = args.input
    if is_url(args.input):
        from vcodec.serve.client import open_url

        source = open_url(args.input, layers="base", token=args.token)
    t0 = time.perf_counter()
    frames = detections = 0
    try:
        for index, det in detect_stream(source, output=args.output, fmt=args.format, conceal=args.conceal,
                                    weights=None if detector is not None else args.weights,
                                    detector=detector, base_model=args.base_model,
                                    threads=args.threads or 0, progress=not args.no_progress):
            frames += 1
            detections += len(det)
            if annotate is not None:
                annotate.add(index, det)
        if annotate is not None:
            annotate.close(ok=True)
            annotate = None
    finally:
        if annotate is not None:
            annotate.close(ok=False)  # a failed run leaves no annotated output
        close = getattr(source, "close", None)
        if close is not None and source is not args.input:
            close()
    dt = time.perf_counter() - t0
    print(f"vcodec detect: base layer of {args.input}: {frames} frames, {detections} detections, "
          f"{frames / dt if dt > 0 else 0.0:.1f} frames/s -> "
          f"{args.output if args.output != '-' else 'stdout'}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from vcodec.cli._args import is_url
    from vcodec.codec import is_stream

    if is_url(args.input) or is_stream(args.input):
        return run_stream(args)

    from vcodec.detection import detect_frames
    from vcodec.detection.formats import coco_results, format_for_path, write_detections

    if args.frames is not None and args.frames <= 0:
        raise ConfigError(f"--frames must be positive, got {args.frames}")
    if args.threads:
        torch.set_num_threads(args.threads)
    fmt = "coco" if args.output == "-" and args.format is None else format_for_path(args.output, args.format)
    if args.output == "-" and fmt != "coco":
        raise ConfigError(f"--format {fmt} writes files; give -o FILE or -o DIR")
    detector = build_detector(args)
    frames = open_frames(args)
    counts = {"frames": 0, "detections": 0}
    t0 = time.perf_counter()
    annotated = _open_annotated(args, frames)
    shown: deque[Any] = deque()  # pictures read by the detector, waiting for their detections

    def kept(source: Iterable) -> Iterator:
        for frame in source:
            shown.append(frame)
            yield frame

    def counted(items: Iterator) -> Iterator:
        from vcodec.annotate import draw_detections

        for index, det in items:
            counts["frames"] += 1
            counts["detections"] += len(det)
            if annotated is not None:
                annotated.write(draw_detections(shown.popleft(), det), index=index)
            yield index, det

    items = counted(detect_frames(detector, kept(frames) if annotated is not None else frames,
                                  mode=args.mode, size=args.size))
    try:
        if args.output == "-":
            json.dump(coco_results(items), sys.stdout)
            sys.stdout.write("\n")
        else:
            stem = Path(args.input).stem if args.input != "-" else "stdin"
            write_detections(args.output, items, fmt, stem=stem)
        if annotated is not None:
            annotated.close()
    finally:
        if annotated is not None:
            annotated.abort()  # a no-op after close(): only a failed run drops the output
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    dt = time.perf_counter() - t0
    fps = counts["frames"] / dt if dt > 0 else 0.0
    print(
        f"vcodec detect: {detector.name}: {counts['frames']} frames, {counts['detections']} detections, "
        f"{fps:.1f} frames/s -> {args.output if args.output != '-' else 'stdout'} ({fmt})",
        file=sys.stderr,
    )
    return 0


def _open_annotated(args: argparse.Namespace, frames: Any) -> Any:
    """--annotate on plain video: an AnnotatedOutput at the input's frame rate, or None."""
    if not args.annotate:
        return None
    from vcodec.annotate import AnnotatedOutput

    info = getattr(frames, "info", None)
    return AnnotatedOutput(args.annotate, getattr(info, "fps", None) or 25)


class _StreamAnnotation:
    """--annotate on a stream: the base layer's own picture (second decoder), detections drawn."""

    def __init__(self, args: argparse.Namespace) -> None:
        from vcodec.annotate import AnnotatedOutput, ByIndex
        from vcodec.codec import Decoder

        self.dec = Decoder(args.input, layers="base", conceal=args.conceal, threads=args.threads or 0,
                           base_model=args.base_model)
        if not self.dec.base.has_picture:
            kind = self.dec.base.kind
            self.dec.close()
            raise ConfigError(
                f"--annotate: the base layer of {args.input} ({kind}) carries features, not a "
                "picture; draw on the full decode: vcodec decode STREAM -o x.y4m --annotate OUT"
            )
        self.out = AnnotatedOutput(args.annotate, self.dec.info.fps)
        self.pictures = ByIndex((f.index, f) for f in self.dec.frames())

    def add(self, index: int, det: Any) -> None:
        from vcodec.annotate import draw_detections

        picture = self.pictures.get(index)
        if picture is not None:  # None: lost to damage (--conceal)
            self.out.write(draw_detections(picture, det), index=index)

    def close(self, ok: bool) -> None:
        (self.out.close if ok else self.out.abort)()
        self.dec.close()


def _stream_annotation(args: argparse.Namespace) -> _StreamAnnotation | None:
    if not args.annotate:
        return None
    from vcodec.cli._args import is_url

    if args.input == "-" or is_url(args.input):
        raise ConfigError("--annotate on a stream reads it twice (detections, then the base pictures); "
                          "save it to a file first: vcodec detect clip.vcs -o dets.json --annotate seen.mp4")
    return _StreamAnnotation(args)


def main(argv: list[str] | None = None) -> int:
    return subcommand_main("detect", argv)


if __name__ == "__main__":
    sys.exit(main())
