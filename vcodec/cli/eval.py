"""Evaluate vcodec against conventional codecs: rate vs detection accuracy, tracking and picture quality.

Codes one input with every system on the same frames and writes a results
folder:

  vcodec eval clip.y4m -o results/ --frames 64
  vcodec eval BasketballPass_416x240_50.yuv --gt ClassD/Annotations/BasketballPass -o res/
  vcodec eval cars_320x240.i420 --base-model base-yolox-nano-v2 -o res/ --jobs 2
  vcodec eval lobby.mp4 -o res-fixed/ --base-tune fixed-camera   # what a tune buys against x265

The detector is the base model's (default: YOLOX-Nano, shipped; on the base
layer with the back end adapted to the model's decoded features when one
ships), the same clean detector on pixels.

The base layer is coded as `vcodec encode` codes it, with the same encoder
tools (--base-effort, --base-tune, --base-p-offset, --base-deadzone); they
are recorded in every point and in provenance.json, and a change of tools
recomputes the vcodec points (the anchors are kept).

Systems: vcodec base layer alone (detector back end on the decoded latent) at
each --base-qualities point; vcodec full decode at each --enh-qps per base
point; single-layer x265 and x264 at each --anchor-qps (detector on decoded
pixels); simulcast (base layer + an independent x265 stream).

Ground truth (--gt): an SFU-HW-Objects-v1 or -Tracks-v1 folder of
<name>_seq_NNN.txt files, a MOTChallenge gt/gt.txt (or its sequence folder),
or a COCO JSON; the format is guessed, --gt-format forces it.  Without --gt
the detector's own detections on the uncompressed frames (score >=
--gt-min-score) are PSEUDO ground truth, and every output says so.

Metrics: mAP@0.5 and mAP@[.5:.95] (pycocotools), MOTA and IDF1 (IoU/Kalman
tracker, motmetrics), PSNR-Y, PSNR-YUV (6:1:1), MS-SSIM on luma, kbit/s per
layer at the sequence's frame rate, BD-rate (PCHIP and cubic Bjontegaard):
base layer vs each anchor on (kbit/s, mAP), full decode vs x265 and vs
simulcast on (kbit/s, PSNR-Y) and (kbit/s, MS-SSIM).

Outputs in the folder: points/<id>.json and .csv per point, results.csv,
results.json, rd_map50.png, rd_psnr.png, rd_msssim.png, summary.md,
provenance.json (vcodec version, weights sha256, encoder versions, settings).
Re-running with the same settings skips points already computed; --jobs N
runs work units in N processes.  BD-rate needs at least 4 points per curve
for the cubic method (2 for PCHIP) and quality that rises with the rate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from vcodec.cli._args import add_base_tool_arguments, add_input_size
from vcodec.cli.main import subcommand_main

HELP = "evaluate rate vs detection accuracy / quality against x265, x264 and simulcast"


def _number_list(kind: type, example: str) -> Callable[[str], list]:
    """An argparse type for comma-separated numbers of ``kind`` (the error shows ``example``)."""
    what = "numbers" if kind is float else "integers"

    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, e.g. {example}, got {text!r}"
            ) from None

    return parse


_floats = _number_list(float, "0.2,0.5")
_ints = _number_list(int, "27,32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", help="video file (raw YUV with its size in the name, Y4M, MP4, ...) or image folder"
    )
    parser.add_argument("-o", "--output", required=True, help="results folder (created; reused to resume)")
    parser.add_argument("--frames", type=int, help="evaluate at most N frames")
    parser.add_argument("--start", type=int, default=0, help="skip the first N frames")
    add_input_size(parser)
    parser.add_argument(
        "--gt", help="ground truth: SFU-HW folder, MOT gt.txt, or COCO JSON (default: pseudo)"
    )
    parser.add_argument(
        "--gt-format",
        choices=("sfu-objects", "sfu-tracks", "mot", "coco"),
        help="ground-truth format (default: guessed from --gt)",
    )
    parser.add_argument("--gt-stem", help="sequence name inside an SFU-HW folder holding several")
    parser.add_argument(
        "--gt-min-score",
        type=float,
        default=0.3,
        help="score for a reference detection to count as pseudo ground truth (default 0.3)",
    )
    parser.add_argument(
        "--min-class-objects",
        type=int,
        default=None,
        metavar="N",
        help="mAP averages the classes with at least N ground-truth objects in the evaluated frames "
        "(default: 5 with pseudo ground truth, whose rare classes are mostly the reference detector's "
        "own mistakes; 1 = every class, the default with --gt); the summary names what was left out",
    )
    parser.add_argument("--detector", help="detector name (default: the one the base model serves)")
    parser.add_argument(
        "--detector-weights",
        help="detector weights file (.onnx/.pth); yolox-nano and vcodec-det have their own",
    )
    parser.add_argument("--base-model", help="base model id or .json/.pt path (default: the shipped one)")
    parser.add_argument(
        "--base-size",
        type=int,
        metavar="PIXELS",
        help="base layer working size, long side (default: the base model's, 832); the detector on "
        "pixels (ground truth, anchors) works at the same geometry",
    )
    parser.add_argument(
        "--anchor-size",
        type=int,
        metavar="PIXELS",
        help="also report the anchors with their detector at this long side (e.g. 416), labelled x265@N",
    )
    add_base_tool_arguments(
        parser.add_argument_group("base-layer encoder tools (as vcodec encode; every base and full point)"))
    parser.add_argument(
        "--base-qualities",
        type=_floats,
        default=[0.15, 0.4, 0.65, 0.9],
        help="base-layer quality points in [0, 1] (default 0.15,0.4,0.65,0.9)",
    )
    parser.add_argument(
        "--enh-qps",
        type=_ints,
        default=[27, 32, 37, 42],
        help="enhancement QPs per base point (default 27,32,37,42)",
    )
    parser.add_argument(
        "--anchor-qps",
        type=_ints,
        default=[22, 27, 32, 37, 42, 47],
        help="single-layer x265/x264 QPs (default 22,27,32,37,42,47)",
    )
    parser.add_argument(
        "--anchors", default="x265,x264", help="single-layer anchors (default x265,x264; '' for none)"
    )
    parser.add_argument("--enh-codec", default="libx265", help="enhancement encoder (default libx265)")
    parser.add_argument(
        "--inter-layer",
        choices=("on", "off", "auto"),
        default="auto",
        help="what vcodec's enhancement layer codes: per GOP the cheaper of the two (auto, default, as "
        "vcodec encode), always the residual (on) or always full frames (off); see vcodec encode --help",
    )
    parser.add_argument(
        "--preset", default="medium", help="x264/x265 preset for every system (default medium)"
    )
    parser.add_argument("--intra-period", type=int, help="intra period (default 32 up to 30 fps, else 64)")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.01,
        help="lowest detection score kept for mAP ranking (default 0.01)",
    )
    parser.add_argument(
        "--no-full-detect", action="store_true", help="skip the detector on full-decode pixels"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=0, metavar="N",
        help="also give every point's mAP@0.5 a 95%% interval from N resamples of the evaluated frames "
        "(drawn with replacement, the same resamples for every point): how much of a difference could "
        "come from which frames were evaluated; 200 is a good start; costs N mAP evaluations per point "
        "(default 0: off)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, metavar="N", help="run the work units as tasks on a local Ray "
                        "with N workers (pip install 'vcodec[ray]'); same results and cache as serial")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the work units on a running Ray cluster "
        "(`ray start --head` prints the address); the input must be reachable from every node",
    )


def run(args: argparse.Namespace) -> int:
    from vcodec.detection import DEFAULT_DETECTOR
    from vcodec.eval.runner import EvalConfig, run_eval

    anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
    cfg = EvalConfig(
        input=args.input,
        output=args.output,
        frames=args.frames,
        start=args.start,
        size=args.input_size,
        gt=args.gt,
        gt_format=args.gt_format,
        gt_stem=args.gt_stem,
        # the runner takes the base model's detector when base points are coded; without them
        # nothing names one, so the package default applies
        detector=args.detector or (None if args.base_qualities else DEFAULT_DETECTOR),
        detector_weights=args.detector_weights,
        base_model=args.base_model,
        base_size=args.base_size,
        base_effort=args.base_effort,
        base_tune=args.base_tune,
        base_p_offset=args.base_p_offset,
        base_deadzone=args.base_deadzone,
        anchor_size=args.anchor_size,
        base_qualities=args.base_qualities,
        enh_qps=args.enh_qps,
        anchor_qps=args.anchor_qps,
        anchors=anchors,
        enh_codec=args.enh_codec,
        inter_layer=args.inter_layer,
        preset=args.preset,
        intra_period=args.intra_period,
        gt_min_score=args.gt_min_score,
        min_class_objects=args.min_class_objects,
        score_threshold=args.score_threshold,
        bootstrap=args.bootstrap,
        full_detect=not args.no_full_detect,
        jobs=args.jobs,
        threads=args.threads,
        progress=not args.no_progress,
        workers=args.workers,
        ray_address=args.ray,
    )
    results = run_eval(cfg)
    out = Path(args.output)
    plots = ", ".join(str(out / p) for p in ("rd_map50.png", "rd_psnr.png", "rd_msssim.png"))
    print(f"{len(results.points)} points; summary: {out / 'summary.md'} (plots linked there: {plots})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return subcommand_main("eval", argv)


if __name__ == "__main__":
    sys.exit(main())
