#!/usr/bin/env python
"""Residual (inter-layer prediction on) against full frames (off) in the enhancement layer.

    python tools/bench_inter_layer.py ../shared/data/clips/cars_320x240.i420 --frames 16
    python tools/bench_inter_layer.py ../shared/data/clips/one-by-one-person-detection.mp4 --start 75

For each base quality the clip's base pictures are made once by the base model;
the enhancement layer then codes the same frames twice with libx265 at each QP,
once as the residual ``x - x_base`` (``Encoder(inter_layer=True)``) and once as
the frames themselves (``inter_layer=False``), and both are decoded.  Printed
per row (and written with --json): bytes and PSNR-Y of the full decode each
way, and the byte ratio residual / full frames (> 1: the residual costs more);
beside them the same for the first frame alone as one intra picture, which is
what ``inter_layer="auto"`` probes, and the mode the probe would choose.
This is the measurement behind the ``inter_layer`` notes in docs/CODEC.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch


def code(info: Any, frames: list[Any], bases: list[Any], qp: int, residual: bool, preset: str,
         intra_period: int) -> tuple[int, float]:
    """(bytes, mean PSNR-Y of the full decode) of one enhancement-layer pass."""
    from vcodec.enhancement import EnhancementDecoder, EnhancementEncoder, frame_psnr, reconstruct

    enc = EnhancementEncoder(info.width, info.height, bit_depth=info.bit_depth, fps=info.fps, codec="libx265",
                             qp=qp, preset=preset, intra_period=intra_period, threads=1, anchor=not residual)
    packets = []
    for x, xb in zip(frames, bases, strict=False):
        packets += enc.encode(x, xb if residual else None)
    packets += enc.flush()
    dec = EnhancementDecoder("libx265", enc.config(), enc.extradata, threads=1)
    pics: dict[int, Any] = {}
    for p in sorted(packets, key=lambda p: p.dts):
        pics.update(dec.decode(p))
    pics.update(dec.flush())
    dec.close()
    psnr = [frame_psnr(x, reconstruct(xb if residual else None, pics[i], index=i))[0]
            for i, (x, xb) in enumerate(zip(frames, bases, strict=False))]
    return sum(len(p.data) for p in packets), float(np.mean(psnr))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--base-model", default=None, help="base model id or .json (default: the shipped one)")
    ap.add_argument("--qualities", default="0.15,0.9")
    ap.add_argument("--qps", default="27,37")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from vcodec.codec import choose_inter_layer
    from vcodec.codec.base_layer import get_base_factory, kind_for_mode
    from vcodec.codec.encoder import PROBE_MARGIN
    from vcodec.enhancement import frame_psnr
    from vcodec.io import open_video

    with open_video(args.clip, start=args.start, frames=args.frames) as r:
        info, frames = r.info, list(r)
    base = get_base_factory(kind_for_mode("learned")).for_encoding(args.base_model)
    rows = []
    for q in (float(v) for v in args.qualities.split(",")):
        be = base.encoder(q, args.intra_period)
        bases = [be.encode_frame(f, i % args.intra_period == 0)[1] for i, f in enumerate(frames)]
        base_psnr = float(np.mean([frame_psnr(x, xb)[0] for x, xb in zip(frames, bases, strict=True)]))
        for qp in (int(v) for v in args.qps.split(",")):
            rb, rp = code(info, frames, bases, qp, True, args.preset, args.intra_period)
            fb, fp = code(info, frames, bases, qp, False, args.preset, args.intra_period)
            prb, prp = code(info, frames[:1], bases[:1], qp, True, args.preset, 1)
            pfb, pfp = code(info, frames[:1], bases[:1], qp, False, args.preset, 1)
            row = {"clip": Path(args.clip).name, "frames": len(frames), "base_model": base.codec_id,
                   "base_quality": q, "base_psnr_y": round(base_psnr, 2), "qp": qp,
                   "residual_bytes": rb, "residual_psnr_y": round(rp, 2),
                   "full_frame_bytes": fb, "full_frame_psnr_y": round(fp, 2),
                   "byte_ratio": round(rb / fb, 3),
                   "probe_byte_ratio": round(prb / pfb, 3), "probe_psnr_gap_db": round(pfp - prp, 2),
                   # what the encoder decides per GOP (with its margin for the probe's bias)
                   "probe_choice": "residual" if choose_inter_layer(prb, prp, pfb, pfp, margin=PROBE_MARGIN)
                   else "full_frame",
                   "sequence_choice": "residual" if choose_inter_layer(rb, rp, fb, fp) else "full_frame"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
