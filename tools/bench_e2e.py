#!/usr/bin/env python3
"""End-to-end benchmark (issue 6 "Measure and report"): vcodec beside single-layer x265.

For each clip (default: cars, the first 150 frames of one-by-one-person, the
1080p dashcam clip from ../shared/data/clips/), in one run:

* vcodec: encode both layers (enhancement at ``--qp``), then base-only detect
  (extracted base layer -> detector back end on the decoded latent) and full
  decode, each timed; kbit/s per layer, base share, PSNR-Y of the full decode,
  mAP@0.5 of the base-layer detections against the same detector on the
  uncompressed frames (at the base layer's geometry);
* x265 single layer at the same QP and preset: encode and decode timed,
  kbit/s, PSNR-Y, and mAP@0.5 of the detector on the decoded pictures.

Usage::

    python tools/bench_e2e.py --base-model /path/base-yolox-nano-v2.json \\
        --detector-weights ../shared/models/yolox_nano/yolox_nano.onnx --threads 2 --out bench_e2e.json

Prints a Markdown table; ``--out`` also writes all numbers as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "data" / "clips"
DEFAULT_CLIPS = [("cars_320x240.i420", None), ("one-by-one-person-detection.mp4", 150),
                 ("VID_1920x1080_cabac_temporal_direct.264", None)]


def reference_detections(detector: Any, frames: list[Any], geometry: Any) -> list[Any]:
    """The detector on uncompressed frames, at the base layer's coded size (same scale, pad 64)."""
    import cv2

    from vcodec.detection import Detections

    out = []
    for f in frames:
        bgr = f.to_bgr()
        if (geometry.coded_width, geometry.coded_height) != (f.width, f.height):
            bgr = cv2.resize(bgr, (geometry.coded_width, geometry.coded_height), interpolation=cv2.INTER_AREA)
        d = detector.detect(bgr, mode="pad", multiple=64)
        out.append(Detections(d.boxes / geometry.scale, d.scores, d.class_ids, f.width, f.height))
    return out


def bench_clip(path: Path, max_frames: int | None, args: argparse.Namespace, detector: Any) -> dict[str, Any]:
    from vcodec.baselayer.learned import BaseCodec
    from vcodec.bitstream import extract_layers
    from vcodec.codec import Decoder, Encoder
    from vcodec.detection.evaluate import map_against
    from vcodec.enhancement import EnhancementDecoder, EnhancementEncoder, frame_psnr, reconstruct
    from vcodec.io import open_video

    with open_video(path, frames=max_frames) as r:
        info = r.info
        frames = list(r)
    n = len(frames)
    seconds = n / float(info.fps)
    kbps = lambda nbytes: nbytes * 8 / 1000 / seconds  # noqa: E731
    row: dict[str, Any] = {"clip": path.name, "size": f"{info.width}x{info.height}", "frames": n,
                           "fps": float(info.fps), "qp": args.qp}

    # vcodec: encode
    # speeds are steady state: model loading (reported as *_setup_s) is outside the clocks
    sink = io.BytesIO()
    with Encoder(sink, info, base_model=args.base_model, base_quality=args.base_quality, enh_qp=args.qp,
                 preset=args.preset, intra_period=args.intra_period, threads=args.threads) as enc:
        for f in frames:
            enc.encode(f)
    s = enc.summary()
    row["vc_encode_fps"] = s.encode_fps
    row["vc_setup_s"] = s.extra["setup_seconds"]
    row.update(vc_base_kbps=s.base_kbps, vc_enh_kbps=s.enh_kbps, vc_total_kbps=s.total_kbps,
               vc_base_share=s.base_share)
    stream = sink.getvalue()
    base_only = io.BytesIO()
    extract_layers(io.BytesIO(stream), base_only, [0])

    # base-only detect
    with Decoder(base_only.getvalue(), layers="base", base_model=args.base_model, detector=detector) as dec:
        t0 = time.perf_counter()
        base_dets = [d for _, d in dec.detections()]
    row["vc_detect_fps"] = n / (time.perf_counter() - t0)

    # full decode
    with Decoder(stream, base_model=args.base_model, threads=args.threads) as dec:
        t0 = time.perf_counter()
        decoded = list(dec.frames())
    row["vc_decode_fps"] = n / (time.perf_counter() - t0)
    row["vc_psnr_y"] = float(np.mean([frame_psnr(a, b)[0] for a, b in zip(frames, decoded, strict=False)]))
    with Decoder(stream, layers="base", base_model=args.base_model) as dec:
        xb = list(dec.frames())
    row["vc_base_psnr_y"] = float(np.mean([frame_psnr(a, b)[0] for a, b in zip(frames, xb, strict=False)]))
    del decoded, xb

    geom = BaseCodec.from_weights(args.base_model).geometry(info.width, info.height)
    ref = reference_detections(detector, frames, geom)
    m = map_against(ref, base_dets)
    row.update(vc_map50=m["map50"], ref_objects=m["num_ref"])

    # x265 single layer, same QP and preset
    t0 = time.perf_counter()
    with EnhancementEncoder(info.width, info.height, bit_depth=info.bit_depth, fps=info.fps, qp=args.qp,
                            preset=args.preset, intra_period=args.intra_period, threads=args.threads,
                            anchor=True) as x265:
        packets = []
        for f in frames:
            packets += x265.encode(f, None)
        packets += x265.flush()
        cfg, extra = x265.config(), x265.extradata
    row["x265_encode_fps"] = n / (time.perf_counter() - t0)
    row["x265_kbps"] = kbps(sum(len(p.to_payload()) for p in packets))
    t0 = time.perf_counter()
    with EnhancementDecoder("libx265", cfg, extra, threads=args.threads) as xd:
        out = []
        for p in packets:
            out += xd.decode(p)
        out += xd.flush()
        pics = [reconstruct(None, r, index=i) for i, r in out]
    row["x265_decode_fps"] = n / (time.perf_counter() - t0)
    row["x265_psnr_y"] = float(np.mean([frame_psnr(a, b)[0] for a, b in zip(frames, pics, strict=False)]))
    row["x265_map50"] = map_against(ref, reference_detections(detector, pics, geom))["map50"]
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| clip | frames | QP | base kbit/s | enh kbit/s | total kbit/s | base share | PSNR-Y full | "
            "PSNR-Y base | mAP@0.5 base | enc fps | base detect fps | full dec fps | x265 kbit/s | "
            "x265 PSNR-Y | x265 mAP@0.5 | x265 enc fps | x265 dec fps |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['clip']} ({r['size']}) | {r['frames']} | {r['qp']} | {r['vc_base_kbps']:.1f} | "
            f"{r['vc_enh_kbps']:.1f} | {r['vc_total_kbps']:.1f} | {100 * r['vc_base_share']:.1f}% | "
            f"{r['vc_psnr_y']:.2f} | {r['vc_base_psnr_y']:.2f} | {r['vc_map50']:.3f} | "
            f"{r['vc_encode_fps']:.2f} | "
            f"{r['vc_detect_fps']:.2f} | {r['vc_decode_fps']:.2f} | {r['x265_kbps']:.1f} | "
            f"{r['x265_psnr_y']:.2f} | "
            f"{r['x265_map50']:.3f} | {r['x265_encode_fps']:.1f} | {r['x265_decode_fps']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", help="base model id or .json (default: the shipped one)")
    ap.add_argument("--detector-weights", help="weights of the base model's detector (YOLOX-Nano: .onnx)")
    ap.add_argument("--clips", nargs="*", help="clip files (default: the three of issue 6)")
    ap.add_argument("--frames", type=int, help="cap every clip at N frames")
    ap.add_argument("--qp", type=int, default=32, help="enhancement / x265 QP (default 32)")
    ap.add_argument("--base-quality", type=float, default=0.5)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="torch and encoder threads (default 2)")
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args(argv)

    import torch

    from vcodec.baselayer.learned import BaseCodec
    from vcodec.codec.base_layer import LearnedBase, default_base_model

    torch.set_num_threads(args.threads)
    args.base_model = args.base_model or default_base_model()
    detector = LearnedBase(BaseCodec.from_weights(args.base_model)).build_detector(args.detector_weights)
    clips = [(Path(c), args.frames) for c in args.clips] if args.clips else [
        (CLIPS / name, args.frames or cap) for name, cap in DEFAULT_CLIPS]
    rows = []
    for path, cap in clips:
        if not path.is_file():
            print(f"skip {path}: missing", file=sys.stderr)
            continue
        print(f"{path.name} ...", file=sys.stderr, flush=True)
        rows.append(bench_clip(path, cap, args, detector))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if args.out:
            args.out.write_text(json.dumps({"base_model": args.base_model, "threads": args.threads,
                                            "rows": rows}, indent=2) + "\n")
    print(f"base model {args.base_model}, {args.threads} thread(s), preset {args.preset}, "
          f"intra period {args.intra_period}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
