"""Encode a video into one two-layer vcodec stream (.vcs).

Layer 0 (base) is a learned latent that object detectors consume directly
(`vcodec detect`, `vcodec extract`); layer 1 (enhancement) is for people,
coded with a conventional encoder (libx265 by default): per intra period,
the residual over the base picture or the frames themselves.  Intra
frames every --intra-period frames in both layers.

Examples:
  vcodec encode clip.mp4 -o clip.vcs
  vcodec encode clip_416x240_50.yuv -o clip.vcs --base-quality 0.7 --enh-qp 30 --psnr
  vcodec encode raw.yuv --size 832x480 --fps 30 -o clip.vcs --frames 64
  vcodec encode clip.y4m -o clip.vcs --lossless             # bit-exact full decode
  vcodec encode clip.mp4 -o - | vcodec detect - -o dets.txt  # frame-by-frame pipe
  vcodec encode clip.mp4 -o clip.vcs --inter-layer on       # always the residual
  vcodec encode lobby.mp4 -o lobby.vcs --base-tune fixed-camera  # cheaper P-frames on a still camera
  vcodec encode long.y4m -o long.vcs --workers 2 --enh-qp 30 # GOP-parallel on local Ray
  vcodec encode /shared/long.y4m -o long.vcs --ray HEAD:6379 # on a Ray cluster (docs/CLUSTER.md)

--inter-layer auto (default) decides per intra period (GOP): it codes the
GOP's first frame both ways (residual over the base picture, full frame) and
keeps the cheaper at equal PSNR; `vcodec info` shows each GOP's mode and the
summary the probes' share of the encode time.  on: always the residual; off:
always full frames (same stream, same base layer).  The residual pays off
only when the base picture predicts the input well; with the shipped base
models full frames need fewer bits for the same PSNR (docs/CODEC.md,
"inter_layer").

Inputs are whatever `vcodec.io.open_video` reads: raw YUV (size from the name
or --size), Y4M, MP4/MKV, .264/.265, image folders, or - for stdin.  The
output is written to a temporary name and renamed when complete; on any
error nothing is left behind.  A progress bar (stderr) shows frames/s and
kbit/s per layer; the summary gives bytes and kbit/s per layer (and PSNR with
--psnr; --json prints it as JSON on stderr, or into a file with --json FILE).

--workers N (N local Ray processes) or --ray ADDRESS (a running Ray cluster)
codes the intra periods (GOPs) in parallel and writes ONE stream, units in
order, with its INDEX and END.  Both layers then use closed GOPs (an IDR at
every intra frame; "closed_gops": true in the stream's properties); with
--enh-qp the stream is byte-identical to the serial encode with --closed-gops,
with CRF each GOP is rate-controlled on its own.  Workers read the input
themselves: on a cluster give a path or URL every node can reach.  Needs the
optional extra: pip install 'vcodec[ray]'.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

from vcodec.cli._args import add_base_tool_arguments, parse_fps, parse_size
from vcodec.cli._io import write_json_report
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError, InputError

HELP = "encode a video into a two-layer stream (base for detection + enhancement for viewing)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vcodec.enhancement import CODECS

    parser.add_argument("input", help="video file, image folder, or - for stdin")
    parser.add_argument("-o", "--output", help="output stream (.vcs), or - for stdout")
    parser.add_argument("--publish", metavar="URL", help="also push the stream live to a `vcodec serve` "
                        "(http://HOST:PORT/streams/NAME); use -o - or a file for the local copy")
    parser.add_argument("--token", help="bearer token for --publish")
    g = parser.add_argument_group("base layer (machines)")
    g.add_argument("--base-quality", type=float, default=None,
                   help="0..1, higher = more bits (default: the base model's own operating point, "
                        "0.25 for base-yolox-nano-v3, else 0.5)")
    g.add_argument("--base-model", help="base model id or .json/.pt file (default: the shipped model)")
    g.add_argument("--base-kbps", type=float, metavar="KBPS",
                   help="rate control: choose the base quality of every frame to hold the base layer near "
                   "this rate (kbit/s); --base-quality is where it starts. The summary reports the "
                   "achieved rate")
    add_base_tool_arguments(g)
    g.add_argument("--base-size", type=int, metavar="PIXELS",
                   help="working size of the base layer: the long side it codes at (the detector then "
                   "works at this size too); larger frames are downscaled, smaller ones kept "
                   "(default: the model's, 832)")
    g.add_argument("--base-mode", choices=("learned", "features"), default="learned",
                   help="learned latent (default) or training-free detector features")
    g.add_argument("--detector", help="with --base-mode features: the split detector whose features are "
                   "coded (default vcodec-det; e.g. yolox-nano with --weights)")
    g = parser.add_argument_group("enhancement layer (people)")
    g.add_argument("--enh-codec", default="libx265", choices=list(CODECS), help="default libx265")
    g.add_argument("--enh-qp", type=int, help="constant QP (x265/x264 0..51)")
    g.add_argument("--enh-crf", type=float, help="constant rate factor (default: the codec's, x265 28)")
    g.add_argument("--preset", help="encoder preset, e.g. ultrafast..veryslow (default: the encoder's)")
    g.add_argument("--lossless", action="store_true", help="lossless enhancement: bit-exact full decode")
    g.add_argument("--roi", action="store_true", help="enhance only objects the base-layer detector finds")
    g.add_argument("--inter-layer", choices=("on", "off", "auto"), default="auto",
                   help="auto (default): per GOP, probe both on its first frame and keep the cheaper; "
                   "on: always the residual over the base picture; off: always full frames")
    g.add_argument(
        "--detector-weights",
        "--weights",
        dest="detector_weights",
        help="detector weights file when the detector is not shipped (--roi, --base-mode features)",
    )
    g = parser.add_argument_group("structure")
    g.add_argument("--intra-period", type=int, default=32, help="frames between intra frames (default 32)")
    g.add_argument(
        "--low-delay", action="store_true", help="no B-frames / look-ahead: each frame leaves at once"
    )
    g.add_argument("--closed-gops", action="store_true",
                   help="restart the enhancement encoder at every intra frame: each GOP is closed in both "
                   "layers (implied by --workers/--ray; the serial reference of a parallel encode)")
    g = parser.add_argument_group("parallel (optional extra: pip install 'vcodec[ray]')")
    g.add_argument("--workers", type=int, metavar="N",
                   help="code GOPs in parallel on a local Ray with N worker processes")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="code GOPs in parallel on a running Ray cluster (the address `ray start --head` "
                   "printed, e.g. 10.0.0.5:6379); the input must be reachable from every node")
    g = parser.add_argument_group("input")
    g.add_argument("--frames", type=int, help="encode at most N frames")
    g.add_argument("--start", type=int, default=0, help="skip the first N frames")
    g.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT of raw YUV input (else from its name)")
    g.add_argument("--fps", type=parse_fps, help="frame rate of raw input (or override the container's)")
    g.add_argument("--bit-depth", type=int, choices=(8, 10), help="bit depth of raw input / convert to it")
    g = parser.add_argument_group("run")
    g.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch and the encoder (0 = default)"
    )
    g.add_argument("--psnr", action="store_true", help="measure PSNR of the base and full pictures")
    g.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the summary as JSON (to stderr, or FILE)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def _progress(enabled: bool, total: int | None):  # noqa: ANN202 - tqdm or None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="encode", file=sys.stderr, leave=False, dynamic_ncols=True)


class _Tee(io.RawIOBase):
    """Write the stream to a local sink and a live publisher at once."""

    def __init__(self, *sinks: BinaryIO | io.RawIOBase) -> None:
        super().__init__()
        self.sinks = sinks

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        for sink in self.sinks:
            sink.write(data)
        return len(data)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()


def run(args: argparse.Namespace) -> int:
    if args.output is None and args.publish is None:
        raise ConfigError("give -o OUT.vcs (or -o - for stdout) and/or --publish URL")
    if args.publish is None:
        return _run(args, args.output)
    if args.workers is not None or args.ray is not None:
        raise ConfigError("--publish streams frame by frame; it cannot be combined with --workers/--ray")
    from vcodec.cli._io import atomic_output
    from vcodec.serve.client import Publisher

    with contextlib.ExitStack() as stack:
        # the local file is entered first so that it is committed only after the publisher
        # closed cleanly: a publish refused or failed at the end leaves no local file behind
        local = stack.enter_context(atomic_output(args.output)) if args.output is not None else None
        publisher = Publisher(args.publish, token=args.token)
        try:
            rc = _run(args, publisher if local is None else _Tee(local, publisher))
        except BaseException:
            # report the encoder's error, not the server's answer to the truncated publish
            with contextlib.suppress(Exception):
                publisher.close()
            raise
        publisher.close()
        return rc


def _run(args: argparse.Namespace, output: Any) -> int:
    from vcodec.codec import Encoder
    from vcodec.io import open_video

    if args.workers is not None or args.ray is not None:
        from vcodec.cli.encode_parallel import run_parallel

        return run_parallel(args)

    if args.frames is not None and args.frames <= 0:
        raise ConfigError(f"--frames must be positive, got {args.frames}")
    if args.start < 0:
        raise ConfigError(f"--start must be >= 0, got {args.start}")
    if args.enh_qp is not None and args.enh_crf is not None:
        raise ConfigError("give --enh-qp or --enh-crf, not both")
    if args.lossless and (args.enh_qp is not None or args.enh_crf is not None):
        raise ConfigError("--lossless fixes the quantiser; drop --enh-qp/--enh-crf")
    if args.output != "-" and args.input != "-" and args.output == args.input:
        raise ConfigError(f"-o {args.output} is the input file; choose another output name")
    if args.detector is not None:
        if args.base_mode != "features":
            raise ConfigError("--detector selects the detector of --base-mode features; the learned base "
                              "model is chosen with --base-model")
        if args.base_model is not None and args.base_model != args.detector:
            raise ConfigError("give --detector or --base-model, not both")
        args.base_model = args.detector
    reader = open_video(args.input, size=args.size, fps=args.fps, bit_depth=args.bit_depth,
                        start=args.start, frames=args.frames)
    with reader:
        info = reader.info
        if args.base_kbps is not None and not args.base_kbps > 0:
            raise ConfigError(f"--base-kbps {args.base_kbps:g} is invalid; give a positive target in kbit/s")
        if args.base_size is not None and not 64 <= args.base_size <= max(info.width, info.height):
            raise ConfigError(f"--base-size {args.base_size} is out of range for {info.width}x{info.height} "
                              f"input; use a long side from 64 to {max(info.width, info.height)} pixels")
        enc = Encoder(
            output,
            info,
            base_model=args.base_model,
            base_quality=args.base_quality,
            base_size=args.base_size,
            base_kbps=args.base_kbps,
            base_effort=args.base_effort,
            base_p_offset=args.base_p_offset,
            base_deadzone=args.base_deadzone,
            base_tune=args.base_tune,
            base_mode=args.base_mode,
            enh_codec=args.enh_codec,
            enh_qp=args.enh_qp,
            enh_crf=args.enh_crf,
            preset=args.preset,
            intra_period=args.intra_period,
            low_delay=args.low_delay,
            lossless=args.lossless,
            roi=args.roi,
            threads=args.threads,
            psnr=args.psnr,
            detector_weights=args.detector_weights,
            inter_layer={"on": True, "off": False}.get(args.inter_layer, "auto"),
            closed_gops=args.closed_gops,
        )
        bar = _progress(not (args.quiet or args.no_progress), info.num_frames)
        base = enh = 0
        with enc:
            for frame in reader:
                st = enc.encode(frame)
                base += st.base_bytes
                enh += st.enh_bytes
                if bar is not None:
                    seconds = max(enc.frames_encoded / float(info.fps), 1e-9)
                    bar.set_postfix_str(f"base {base * 8e-3 / seconds:.0f} kbit/s, enh "
                                        f"{enh * 8e-3 / seconds:.0f} kbit/s", refresh=False)
                    bar.update(1)
            if bar is not None:
                bar.close()
            if enc.frames_encoded == 0:  # raised inside the block: the output is removed
                raise InputError(f"{args.input}: no frames to encode (check the input and --start/--frames)")
    summary = enc.summary()
    if not args.quiet:
        target = "stdout" if args.output == "-" else args.output
        if args.publish:
            target = f"{target} and {args.publish}" if args.output else args.publish
        print(f"vcodec encode: {args.input} -> {target}", file=sys.stderr)
        for line in summary.lines():
            print(line, file=sys.stderr)
    if args.json:
        write_json_report(args.json, summary.as_dict())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("encode", argv)


if __name__ == "__main__":
    sys.exit(main())
