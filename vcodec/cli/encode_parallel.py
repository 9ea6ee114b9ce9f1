"""``vcodec encode --workers N | --ray ADDRESS``: the GOP-parallel path of ``vcodec encode``.

Not a command of its own: :mod:`vcodec.cli.encode` hands over here when one
of the two flags is given.  The work is :func:`vcodec.cluster.parallel.encode_parallel`.
"""

from __future__ import annotations

import argparse
import sys

from vcodec.cli._io import write_json_report
from vcodec.errors import ConfigError

__all__ = ["run_parallel", "options_from_args"]


def options_from_args(args: argparse.Namespace):  # noqa: ANN201 - EncodeOptions (lazy import)
    """The EncodeOptions of a command line (``vcodec encode``'s or ``vcodec encode-batch``'s): every
    field the command's parser defines, under the same name; the others keep their defaults (one
    builder, so an option added to EncodeOptions and to a parser reaches the encoder)."""
    from dataclasses import fields

    from vcodec.cluster import EncodeOptions

    given = {f.name: getattr(args, f.name) for f in fields(EncodeOptions) if hasattr(args, f.name)}
    given["inter_layer"] = {"on": True, "off": False}.get(args.inter_layer, "auto")
    return EncodeOptions(**given)


def check_parallel_args(args: argparse.Namespace) -> None:
    """What GOP-parallel encoding cannot do, as usage errors (before Ray starts)."""
    from vcodec.cluster.ray_backend import require_ray

    require_ray()  # exit 2 with how to install, before anything else
    if args.workers is not None and args.ray is not None:
        raise ConfigError("give --workers N (local Ray) or --ray ADDRESS (a cluster), not both")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers} is invalid; give a positive number of worker processes")
    if args.input == "-":
        raise ConfigError("--workers/--ray read the input in every worker; give a file path or URL, "
                          "not stdin")
    if args.base_mode != "learned":
        raise ConfigError("--base-mode features calibrates on the stream's first frames, which other GOPs' "
                          "workers do not see; GOP-parallel encoding needs --base-mode learned")
    if args.base_kbps is not None:
        raise ConfigError("--base-kbps steers the rate from GOP to GOP, so it cannot run GOP-parallel; use "
                          "--base-quality with --workers/--ray")
    if args.enh_qp is not None and args.enh_crf is not None:
        raise ConfigError("give --enh-qp or --enh-crf, not both")
    if args.lossless and (args.enh_qp is not None or args.enh_crf is not None):
        raise ConfigError("--lossless fixes the quantiser; drop --enh-qp/--enh-crf")
    if args.frames is not None and args.frames <= 0:
        raise ConfigError(f"--frames must be positive, got {args.frames}")
    if args.start < 0:
        raise ConfigError(f"--start must be >= 0, got {args.start}")
    if args.output != "-" and args.output == args.input:
        raise ConfigError(f"-o {args.output} is the input file; choose another output name")
    if not 1 <= args.intra_period <= 0xFFFF:
        raise ConfigError(f"--intra-period {args.intra_period} is invalid; use 1..65535")


def run_parallel(args: argparse.Namespace) -> int:
    from vcodec.cluster import InputSpec
    from vcodec.cluster.parallel import encode_parallel, rate_note
    from vcodec.io import ReadOptions, open_video

    check_parallel_args(args)
    spec = InputSpec(args.input,
                     ReadOptions(size=args.size, fps=args.fps, bit_depth=args.bit_depth, start=args.start))
    with open_video(args.input, size=args.size, fps=args.fps, bit_depth=args.bit_depth, start=args.start,
                    frames=args.frames) as reader:  # the header only: workers read the frames
        info = reader.info
    if args.base_size is not None and not 64 <= args.base_size <= max(info.width, info.height):
        raise ConfigError(f"--base-size {args.base_size} is out of range for {info.width}x{info.height} "
                          f"input; use a long side from 64 to {max(info.width, info.height)} pixels")
    options = options_from_args(args)
    bar = None
    if not (args.quiet or args.no_progress):
        from tqdm import tqdm

        bar = tqdm(total=info.num_frames, unit="frame", desc="encode (GOPs)", file=sys.stderr, leave=False,
                   dynamic_ncols=True)
    try:
        summary = encode_parallel(args.output, spec, info, options, workers=args.workers, address=args.ray,
                                  on_gop=(lambda r: bar.update(r.frames)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        par = summary.extra["parallel"]
        target = "stdout" if args.output == "-" else args.output
        print(f"vcodec encode: {args.input} -> {target}", file=sys.stderr)
        for line in summary.lines():
            print(line, file=sys.stderr)
        print(f"  parallel: {par['gops']} GOPs on {par['workers']} workers ({rate_note(options)})",
              file=sys.stderr)
    if args.json:
        write_json_report(args.json, summary.as_dict())
    return 0
