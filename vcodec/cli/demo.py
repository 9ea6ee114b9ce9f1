"""The whole job in one command: encode, take the base layer to analytics, decode for people.

  vcodec demo                      # the bundled real clip: 36 frames, a person walking, 768x432
  vcodec demo clip.mp4 --frames 60 --out demo-out

Steps, each leaving its output in the folder (default ./vcodec-demo):
  1. encode INPUT into stream.vcs (both layers; PSNR measured)
  2. extract the base layer: base.vcs (a byte-level filter, no decoding)
  3. detect objects from base.vcs alone -> detections.json (COCO results)
  4. decode the full video from stream.vcs -> decoded.y4m
Then it prints a short report (bytes per layer, the share of the stream that
analytics need, PSNR of the full decode, detections per frame, frames/s)
and writes it to report.json, with pictures to look at:
  contact_sheet.png  a few frames as rows: original | base picture (layer 0 alone) |
                     full decode, with the base layer's detections drawn and labelled
  annotated.mp4      the full decode, every frame, with the base layer's detections
(--no-pictures skips them).  The default clip is an excerpt of Intel's one-by-one-person
sample video (CC BY 4.0, see sequences/demo_person_768x432.ATTRIBUTION.md); the
synthetic clip of the tests is `vcodec demo sequences/synthetic_416x240_30.y4m`.
The same steps by hand:

  vcodec encode INPUT -o stream.vcs --psnr
  vcodec extract stream.vcs -o base.vcs
  vcodec detect base.vcs -o detections.json
  vcodec decode stream.vcs -o decoded.y4m --annotate annotated.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vcodec._atomic import make_output_folder
from vcodec.cli.main import subcommand_main
from vcodec.errors import ConfigError

HELP = "run encode -> extract base layer -> detect -> full decode on a sample clip and report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", help="a clip (default: the bundled demo_person_768x432.mp4)")
    parser.add_argument("--out", default="vcodec-demo", help="folder for the outputs (default ./vcodec-demo)")
    parser.add_argument("--frames", type=int, help="use only the first N frames")
    parser.add_argument("--size", help="WIDTHxHEIGHT when INPUT is raw YUV without the size in its name")
    parser.add_argument("--base-model", help="base model id or .json/.pt (default: the shipped model)")
    parser.add_argument("--base-quality", type=float, default=None,
                        help="0..1, higher = more bits (default: the base model's own operating point, "
                             "0.25 for base-yolox-nano-v3, else 0.5)")
    parser.add_argument("--enh-qp", type=int, help="enhancement QP (default: the codec's CRF)")
    parser.add_argument("--preset", default="fast", help="enhancement encoder preset (default fast)")
    parser.add_argument("--intra-period", type=int, default=32, help="default 32")
    parser.add_argument(
        "--detector-weights", help="detector weights when the base model's detector is not shipped"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = default)")
    parser.add_argument("--no-pictures", action="store_true",
                        help="skip contact_sheet.png and annotated.mp4")
    parser.add_argument("--sheet-rows", type=int, default=4, help="frames on the contact sheet (default 4)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the report")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from vcodec.bitstream import extract_layers
    from vcodec.cli._args import parse_size
    from vcodec.codec import Decoder, Encoder, bundled_sequence
    from vcodec.codec.sample import demo_clip
    from vcodec.enhancement import frame_psnr
    from vcodec.io import open_video, open_writer

    if args.frames is not None and args.frames <= 0:
        raise ConfigError(f"--frames must be positive, got {args.frames}")
    size = parse_size(args.size) if args.size else None
    if args.sheet_rows <= 0:
        raise ConfigError(f"--sheet-rows must be positive, got {args.sheet_rows}")
    source = Path(args.input) if args.input else (demo_clip() or bundled_sequence())
    out = make_output_folder(Path(args.out), what="--out")
    stream, base_stream = out / "stream.vcs", out / "base.vcs"
    dets_path, decoded_path = out / "detections.json", out / "decoded.y4m"

    # 1. encode
    _say(args, f"[1/4] encoding {source} -> {stream}")
    with open_video(source, size=size, frames=args.frames) as reader:
        info = reader.info
        with Encoder(stream, info, base_model=args.base_model, base_quality=args.base_quality,
                     enh_qp=args.enh_qp, preset=args.preset, intra_period=args.intra_period,
                     threads=args.threads, psnr=True) as enc:
            for frame in reader:
                enc.encode(frame)
    summary = enc.summary()

    # 2. extract the base layer (what an analytics client receives)
    _say(args, f"[2/4] extracting the base layer -> {base_stream}")
    from vcodec.cli._io import atomic_output

    with open(stream, "rb") as src, atomic_output(str(base_stream)) as dst:
        extract_layers(src, dst, [0])
    base_size = base_stream.stat().st_size

    # 3. detect from the base layer alone
    _say(args, f"[3/4] detecting objects from {base_stream} alone -> {dets_path}")
    from vcodec.codec import detect_stream

    t0 = time.perf_counter()
    dets = dict(detect_stream(base_stream, output=str(dets_path), fmt="coco", weights=args.detector_weights,
                              progress=False, base_model=args.base_model, threads=args.threads))
    per_frame = [len(dets[i]) for i in sorted(dets)]
    detect_s = time.perf_counter() - t0

    # 4. decode the full video and compare with the input (pictures: see _Pictures)
    _say(args, f"[4/4] decoding the full video -> {decoded_path}"
               + ("" if args.no_pictures else f", pictures -> {out}/contact_sheet.png, annotated.mp4"))
    decode_s = 0.0
    psnr_y: list[float] = []
    pictures = None if args.no_pictures else _Pictures(out, base_stream, dets, per_frame, args)
    try:
        with Decoder(stream, threads=args.threads, base_model=args.base_model) as dec, \
                open_writer(decoded_path, dec.info) as writer, \
                open_video(source, size=size, frames=args.frames) as again:
            full = dec.frames()
            for original in again:
                t0 = time.perf_counter()
                decoded = next(full, None)
                decode_s += time.perf_counter() - t0
                if decoded is None:
                    break
                writer.write(decoded)
                psnr_y.append(frame_psnr(original, decoded)[0])
                if pictures is not None:
                    pictures.add(original, decoded, dec.info.fps)
        if pictures is not None:
            pictures.finish(summary)
    finally:
        if pictures is not None:
            pictures.close()
    from vcodec.codec.stats import mean_psnr

    stream_size = stream.stat().st_size
    report: dict[str, Any] = {
        "input": str(source), "frames": summary.frames, "size": f"{info.width}x{info.height}",
        "fps": summary.fps, "base_model": summary.base_model, "enh_codec": summary.enh_codec,
        "bytes": {"base": summary.base_bytes, "enhancement": summary.enh_bytes, "stream": stream_size,
                  "base_stream": base_size},
        "kbps": {"base": summary.base_kbps, "enhancement": summary.enh_kbps, "stream": summary.total_kbps},
        "analytics_share": base_size / stream_size,
        "psnr_y": {"base": summary.psnr_base, "full_encoder": summary.psnr_full,
                   "full_decoded": mean_psnr(psnr_y)},
        "detections_per_frame": per_frame,
        "frames_per_second": {"encode": summary.encode_fps, "detect_base_only": len(per_frame) / detect_s,
                              "decode_full": len(psnr_y) / decode_s},
        "outputs": {"stream": str(stream), "base_stream": str(base_stream), "detections": str(dets_path),
                    "decoded": str(decoded_path),
                    **({} if pictures is None else {"contact_sheet": str(pictures.sheet_path),
                                                    "annotated": str(pictures.video_path)})},
    }
    with atomic_output(str(out / "report.json")) as f:
        f.write((json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    fps = report["frames_per_second"]
    full = report["psnr_y"]["full_decoded"]
    lines = [
        f"vcodec demo: {source.name}, {summary.frames} frames {info.width}x{info.height}",
        f"  stream {stream_size} bytes ({summary.total_kbps:.1f} kbit/s): base {summary.base_bytes} "
        f"({summary.base_kbps:.1f} kbit/s), enhancement {summary.enh_bytes} ({summary.enh_kbps:.1f} kbit/s)",
        f"  analytics need {base_size} bytes = {100 * base_size / stream_size:.1f}% of the stream (base.vcs)",
        f"  PSNR-Y of the full decode {full:.2f} dB (base picture alone {summary.psnr_base:.2f} dB)"
        if full is not None and summary.psnr_base is not None else "  PSNR-Y: n/a",
        f"  detections per frame (base layer only): {' '.join(map(str, per_frame))}",
        f"  frames/s: encode {fps['encode']:.1f}, base-only detect {fps['detect_base_only']:.1f}, "
        f"full decode {fps['decode_full']:.1f}",
        f"  outputs in {out}/: stream.vcs base.vcs detections.json decoded.y4m report.json",
    ]
    if pictures is not None:
        lines.append(f"  pictures: {pictures.sheet_path} (original | base picture | full decode, "
                     f"base-layer detections drawn) and {pictures.video_path}")
    print("\n".join(lines))
    return 0


class _Pictures:
    """contact_sheet.png and annotated.mp4, built frame by frame beside the full decode.

    The base picture (what layer 0 alone reconstructs) comes from a second decoder on base.vcs;
    the boxes are the detections of step 3, made from the base layer only.
    """

    def __init__(self, out: Path, base_stream: Path, dets: dict[int, Any], per_frame: list[int],
                 args: argparse.Namespace) -> None:
        from vcodec.annotate import pick_frames
        from vcodec.codec import Decoder

        self.sheet_path, self.video_path = out / "contact_sheet.png", out / "annotated.mp4"
        self.dets = dets
        self.wanted = set(pick_frames(per_frame, args.sheet_rows))
        self.rows: list[Any] = []
        self.index = 0
        self.video: Any = None
        self.base_dec = Decoder(base_stream, layers="base", threads=args.threads, base_model=args.base_model)
        self.base_frames = self.base_dec.frames() if self.base_dec.base.has_picture else None

    def add(self, original: Any, decoded: Any, fps: Any) -> None:
        from vcodec.annotate import AnnotatedOutput, SheetRow, caption, draw_detections

        i, det = self.index, self.dets.get(self.index)
        base = next(self.base_frames, None) if self.base_frames is not None else None
        if self.video is None:
            self.video = AnnotatedOutput(self.video_path, fps)
        n = len(det) if det is not None else 0
        self.video.write(caption(draw_detections(decoded, det),
                                 f"frame {i}: full decode; boxes: {n} detection{'s' * (n != 1)} "
                                 f"from the base layer alone"))
        if i in self.wanted:
            self.rows.append(SheetRow(i, [original, base, decoded], det))
        self.index += 1

    def finish(self, summary: Any) -> None:
        from vcodec.annotate import contact_sheet

        if self.video is not None:
            self.video.close()
        titles = ["original", f"base picture ({summary.base_kbps:.0f} kbit/s, layer 0)",
                  f"full decode ({summary.total_kbps:.0f} kbit/s, both layers)"]
        if self.rows:
            contact_sheet(self.rows, titles, self.sheet_path)

    def close(self) -> None:
        if self.video is not None:
            self.video.abort()  # after finish() this is a no-op; before it, a failed run leaves no video
        self.base_dec.close()


def main(argv: Sequence[str] | None = None) -> int:
    return subcommand_main("demo", argv)


if __name__ == "__main__":
    sys.exit(main())
