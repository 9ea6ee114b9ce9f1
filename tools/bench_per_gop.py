#!/usr/bin/env python
"""Issue 15 measurements: a better predictor for the residual, and the speed of the per-GOP codec.

    python tools/bench_per_gop.py predictor ../shared/data/clips/cars_320x240.i420 --frames 16
    python tools/bench_per_gop.py speed sequences/synthetic_416x240_30.y4m --frames 32

``predictor``: the base pictures are made once (shipped base model, --quality); then libx265
codes, at each QP, (a) the residual over x_base, (b) the residual over a per-GOP gain/offset
predictor ``clip(round(g * x_base + o))`` (least squares per plane over the GOP: what an encoder
could send in a few bytes, at no base-layer cost) and (c) the frames themselves.  Printed: bytes
and mean PSNR-Y of the full decode, and each residual's cost relative to full frames at equal
PSNR-Y (``bytes * 2 ** (-PSNR / 5 dB)``, as ``choose_inter_layer`` compares; > 1: dearer).

``speed`` (one thread): ``Encoder`` with the default ``inter_layer="auto"`` (frames/s of the
whole encode, probes included, models loaded before timing) and ``Decoder.frames()`` of that
stream (``Decoder()`` itself timed apart) beside a plain x265 decode of the same frames at the
same QP, preset and intra period.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from typing import Any

import numpy as np
import torch


def _predictor(frames: list[Any], bases: list[Any]) -> tuple[list[Any], list[tuple[float, float]]]:
    """Per-plane least-squares gain/offset of x on x_base over the frames (one GOP)."""
    from vcodec.io import Frame

    params = []
    for p in range(3):
        xb = np.concatenate([b.planes[p].ravel() for b in bases]).astype(np.float64)
        x = np.concatenate([f.planes[p].ravel() for f in frames]).astype(np.float64)
        var = xb.var()
        g = float(np.cov(x, xb, bias=True)[0, 1] / var) if var > 0 else 0.0
        g = round(g * 64) / 64  # what a 1/64-step field could carry
        o = round(float(x.mean() - g * xb.mean()))
        params.append((g, o))
    out = []
    for b in bases:
        planes = [np.clip(np.rint(g * pl.astype(np.float64) + o), 0, 255).astype(np.uint8)
                  for pl, (g, o) in zip(b.planes, params, strict=True)]
        out.append(Frame(*planes, bit_depth=8, index=b.index, matrix=b.matrix))
    return out, params


def _code(info: Any, frames: list[Any], preds: list[Any] | None, qp: int, ip: int) -> tuple[int, float]:
    from vcodec.enhancement import EnhancementDecoder, EnhancementEncoder, frame_psnr, reconstruct

    enc = EnhancementEncoder(info.width, info.height, fps=info.fps, qp=qp, preset="medium", intra_period=ip,
                             threads=1, anchor=preds is None)
    packets = []
    for i, x in enumerate(frames):
        packets += enc.encode(x, None if preds is None else preds[i])
    packets += enc.flush()
    with EnhancementDecoder("libx265", enc.config(), enc.extradata) as dec:
        pics = dict(r for p in packets for r in dec.decode(p))
        pics.update(dec.flush())
    psnr = [frame_psnr(x, reconstruct(None if preds is None else preds[i], pics[i], index=i))[0]
            for i, x in enumerate(frames)]
    return sum(len(p.data) for p in packets), float(np.mean(psnr))


def predictor(args: argparse.Namespace) -> None:
    from vcodec.codec.base_layer import get_base_factory, kind_for_mode
    from vcodec.enhancement import frame_psnr
    from vcodec.io import open_video

    with open_video(args.clip, start=args.start, frames=args.frames) as r:
        info, frames = r.info, list(r)
    base = get_base_factory(kind_for_mode("learned")).for_encoding(None)
    be = base.encoder(args.quality, args.intra_period)
    bases = [be.encode_frame(f, i % args.intra_period == 0)[1] for i, f in enumerate(frames)]
    preds: list[Any] = []
    params = []
    for s in range(0, len(frames), args.intra_period):
        p, gp = _predictor(frames[s:s + args.intra_period], bases[s:s + args.intra_period])
        preds += p
        params.append(gp)
    row0 = {"clip": args.clip.split("/")[-1], "frames": len(frames), "quality": args.quality,
            "x_base_psnr_y": round(float(np.mean([frame_psnr(x, b)[0]
                                                  for x, b in zip(frames, bases, strict=True)])), 2),
            "gain_offset_psnr_y": round(float(np.mean([frame_psnr(x, b)[0]
                                                       for x, b in zip(frames, preds, strict=True)])), 2),
            "gain_offset": params}
    print(json.dumps(row0), flush=True)
    for qp in args.qps:
        full = _code(info, frames, None, qp, args.intra_period)
        row: dict[str, Any] = {"qp": qp, "full_frame": [full[0], round(full[1], 2)]}
        for name, pr in (("residual", bases), ("gain_offset", preds)):
            b, p = _code(info, frames, pr, qp, args.intra_period)
            rel = b * 2.0 ** ((full[1] - p) / 5.0) / full[0]
            row[name] = [b, round(p, 2), round(rel, 3)]
        print(json.dumps(row), flush=True)


def speed(args: argparse.Namespace) -> None:
    from vcodec.codec import Decoder, Encoder
    from vcodec.enhancement import EnhancementDecoder, encode_sequence, reconstruct
    from vcodec.io import open_video

    with open_video(args.clip, start=args.start, frames=args.frames) as r:
        info, frames = r.info, list(r)
    n = len(frames)
    buf = io.BytesIO()
    enc = Encoder(buf, info, enh_qp=args.qps[0], preset="medium", intra_period=args.intra_period, threads=1)
    with enc:
        for f in frames:
            enc.encode(f)
    s = enc.summary()
    data = buf.getvalue()
    t0 = time.perf_counter()
    with Decoder(data, threads=1) as dec:  # loads the base model only if a residual GOP needs it
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = list(dec.frames())
    dec_s = time.perf_counter() - t0
    cfg, extra, packets = encode_sequence(frames, None, codec="libx265", qp=args.qps[0], preset="medium",
                                          intra_period=args.intra_period, threads=1, fps=info.fps)
    t0 = time.perf_counter()
    with EnhancementDecoder("libx265", cfg, extra, threads=1) as d:
        pics = [r for p in packets for r in d.decode(p)] + d.flush()
    [reconstruct(None, r, index=k) for k, r in pics]
    x265_s = time.perf_counter() - t0
    print(json.dumps({"clip": args.clip.split("/")[-1], "frames": n, "size": f"{info.width}x{info.height}",
                      "qp": args.qps[0], "gops": "".join("R" if g["mode"] == "residual" else "F"
                                                           for g in s.extra["gops"]),
                      "encode_fps": round(s.encode_fps, 2), "probe_s": round(s.extra["probe_seconds"], 3),
                      "encode_s": round(s.seconds, 3), "decoder_setup_s": round(setup_s, 3),
                      "decode_fps": round(len(out) / dec_s, 1),
                      "x265_decode_fps": round(n / x265_s, 1),
                      "decode_speed_vs_x265": round(x265_s / dec_s, 3)}), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("predictor", "speed"))
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--quality", type=float, default=0.5)
    ap.add_argument("--qps", type=lambda s: [int(v) for v in s.split(",")], default=[27, 37])
    ap.add_argument("--intra-period", type=int, default=32)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    (predictor if args.what == "predictor" else speed)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
