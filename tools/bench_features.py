"""Benchmark of the feature base layer: bits/element and kbit/s against mAP@0.5.

YOLOX-Nano split at stride 8 (dark3, 64 channels) on the shared real clips.
Reference: the same detector on the uncompressed frames (same geometry:
long side <= 832, padded to a multiple of 64).  Rows:

* ``features``: this mode (ECSQ or uniform quantizer) at several --base-quality points;
* ``x265``: the same features min-max normalised per frame, the 64 channels
  tiled 8 x 8 into one 10-bit monochrome picture (chroma neutral), coded by
  libx265 through PyAV at several QPs (intra period 32); the per-frame
  min/max (2 float32) count in the rate;
* the learned base layer when its shipped weights for the detector exist.

  /work/venv2/bin/python tools/bench_features.py --frames 40 [--clips cars_320x240.i420 ...]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def tile(f: np.ndarray, cols: int) -> np.ndarray:
    c, h, w = f.shape
    rows = -(-c // cols)
    out = np.zeros((rows * h, cols * w), f.dtype)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * h:(r + 1) * h, q * w:(q + 1) * w] = f[i]
    return out


def untile(img: np.ndarray, c: int, h: int, w: int, cols: int) -> np.ndarray:
    return np.stack([img[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w]
                     for i in range(c)])


def x265_features(feats: list[np.ndarray], qp: int, intra_period: int = 32) -> tuple[list[np.ndarray], int]:
    """Code features as 10-bit tiled pictures with libx265; returns (decoded features, bytes)."""
    import av

    from vcodec.enhancement.avframes import avframe_to_planes, planes_to_avframe

    c, h, w = feats[0].shape
    cols = int(np.ceil(np.sqrt(c)))
    pics, ranges = [], []
    for f in feats:
        lo, hi = float(f.min()), float(f.max())
        ranges.append((np.float32(lo), np.float32(hi)))
        y = np.round((tile(f, cols) - lo) / max(hi - lo, 1e-9) * 1023).astype(np.uint16)
        pics.append(y)
    ph, pw = pics[0].shape
    ph2, pw2 = ph + ph % 2, pw + pw % 2
    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height, enc.pix_fmt = pw2, ph2, "yuv420p10le"
    enc.time_base = av.time_base if False else __import__("fractions").Fraction(1, 25)
    enc.options = {"x265-params": f"qp={qp}:keyint={intra_period}:min-keyint={intra_period}:bframes=0:"
                                  f"scenecut=0:log-level=error", "preset": "medium"}
    packets = []
    for i, y in enumerate(pics):
        yy = np.zeros((ph2, pw2), np.uint16)
        yy[:ph, :pw] = y
        uv = np.full((ph2 // 2, pw2 // 2), 512, np.uint16)
        fr = planes_to_avframe([yy, uv, uv], 10)
        fr.pts = i
        packets += enc.encode(fr)
    packets += enc.encode(None)
    nbytes = sum(p.size for p in packets) + 8 * len(feats)
    dec = av.CodecContext.create("hevc", "r")
    out = []
    for p in packets:
        for fr in dec.decode(p):
            out.append(avframe_to_planes(fr)[0][:ph, :pw])
    for fr in dec.decode(None):
        out.append(avframe_to_planes(fr)[0][:ph, :pw])
    res = []
    for y, (lo, hi) in zip(out, ranges, strict=False):
        res.append(untile(y.astype(np.float32) / 1023 * (hi - lo) + lo, c, h, w, cols).astype(np.float32))
    return res, nbytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--calibration", type=int, default=8)
    ap.add_argument("--clips", nargs="*", default=["cars_320x240.i420", "CiscoVT2people_320x192_12fps.yuv",
                                                   "one-by-one-person-detection.mp4", "Zhling_1280x720.264"])
    ap.add_argument("--qualities", type=float, nargs="*", default=[0.25, 0.375, 0.5, 0.625, 0.75])
    ap.add_argument("--qps", type=int, nargs="*", default=[22, 27, 32, 37, 42])
    ap.add_argument("--quantizers", nargs="*", default=["ecsq", "uniform"])
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate for kbit/s")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vcodec.baselayer.features import FeatureBase
    from vcodec.detection import get_detector
    from vcodec.detection.clips import iter_clip_bgr, shared_dir
    from vcodec.detection.evaluate import map_against
    from vcodec.io.frame import Frame

    onnx = shared_dir() / "models" / "yolox_nano" / "yolox_nano.onnx"
    if not onnx.is_file():
        print(f"YOLOX-Nano weights missing ({onnx})", file=sys.stderr)
        return 1
    det = get_detector("yolox-nano", onnx, score_threshold=0.01)
    clips = []
    for name in args.clips:
        p = shared_dir() / "data" / "clips" / name
        frames = [Frame.from_rgb(np.ascontiguousarray(b[:, :, ::-1]), index=i)
                  for i, b in iter_clip_bgr(p, max_frames=args.frames)]
        fb = FeatureBase("yolox-nano", detector=det, weights=onnx)
        feats, geoms = zip(*(fb.front(f) for f in frames), strict=True)
        with torch.no_grad():
            refs = [
                det.back(torch.from_numpy(f)[None], g.to_detector())[0]
                for f, g in zip(feats, geoms, strict=True)
            ]
        clips.append((name, frames, list(feats), list(geoms), refs))
        print(f"{name}: {len(frames)} frames, features {feats[0].shape}, "
              f"{sum(len(r.filter(0.3)) for r in refs)} reference objects", file=sys.stderr)

    def evaluate(decoded: dict[str, list[np.ndarray]]) -> float:
        ref_all, pred_all = [], []
        for name, _, _, geoms, refs in clips:
            with torch.no_grad():
                pred_all += [det.back(torch.from_numpy(f)[None], g.to_detector())[0]
                             for f, g in zip(decoded[name], geoms, strict=False)]
            ref_all += refs
        return map_against(ref_all, pred_all)["map50"]

    elements = sum(sum(f.size for f in c[2]) for c in clips)
    nframes = sum(len(c[1]) for c in clips)
    rows = [("uncompressed", "-", 32.0, float("nan"), evaluate({c[0]: c[2] for c in clips}), 0.0)]
    for quant in args.quantizers:
        for q in args.qualities:
            t0 = time.perf_counter()
            dec_all, nbytes, hdr = {}, 0, 0
            for name, _frames, feats, geoms, _ in clips:
                fb = FeatureBase("yolox-nano", detector=det, weights=onnx, quantizer=quant)
                fb.calibrate_features(feats[: args.calibration])
                params = fb.layer_config(q, 32)
                hdr += len(str(params))
                enc = fb.encoder(q, 32)
                dec = FeatureBase.from_params(params, detector=det).decoder()
                out = []
                for i, (f, g) in enumerate(zip(feats, geoms, strict=True)):
                    p = enc.encode_features(f, i % 32 == 0, g)
                    nbytes += len(p)
                    out.append(dec.decode_frame(p, i % 32 == 0)[0].numpy())
                dec_all[name] = out
            levels = fb.design(q).levels_requested
            rows.append((f"features-{quant}", f"q={q} N={levels}", 8 * nbytes / elements,
                         8 * nbytes / nframes * args.fps / 1000, evaluate(dec_all), time.perf_counter() - t0))
            print(rows[-1], f"header bytes {hdr}", file=sys.stderr)
    for qp in args.qps:
        t0 = time.perf_counter()
        dec_all, nbytes = {}, 0
        for name, _, feats, _, _ in clips:
            out, nb = x265_features(feats, qp)
            dec_all[name] = out
            nbytes += nb
        rows.append(("x265-10bit-tiled", f"qp={qp}", 8 * nbytes / elements,
                     8 * nbytes / nframes * args.fps / 1000, evaluate(dec_all), time.perf_counter() - t0))
        print(rows[-1], file=sys.stderr)
    from vcodec.baselayer.learned import BASE_MODELS

    learned = [m for m in BASE_MODELS.names() if "yolox-nano" in m]
    print(f"\n{nframes} frames, {elements / nframes:.0f} elements/frame, "
          f"clips: {', '.join(c[0] for c in clips)}")
    print(f"{'method':20s} {'point':14s} {'bits/elem':>9s} {f'kbit/s@{args.fps:g}':>12s} "
          f"{'mAP@0.5':>8s} {'s':>6s}")
    for r in rows:
        print(f"{r[0]:20s} {r[1]:14s} {r[2]:9.3f} {r[3]:12.1f} {r[4]:8.4f} {r[5]:6.1f}")
    if not learned:
        print("learned base layer: no shipped weights for yolox-nano in vcodec/weights/ (not measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
