#!/usr/bin/env python
"""Measure the learned base layer (layer 0) on the real clips' held-out frames.

For each base-quality point: base kbit/s, mean bits per I- and P-frame, mAP@0.5
of base-layer detections (detector back end on T(y_hat)) against the same
detector on the uncompressed frames (same geometry), and PSNR-Y of x_base.
On the cars clip: bits per P-frame against the same frames coded as I-frames
(temporal prediction target: >= 40% saving).  Speed on 416x240 frames with
2 torch threads: base encode (with and without x_base) and base-only
decode + detect, frames/s.

    python tools/bench_base.py --model base-yolox-nano-v2 --json /tmp/bench_base.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from train_base import CLIPS, load_detector, read_clip, split_clip  # noqa: E402

from vcodec.baselayer.learned import BaseCodec, BasePayload  # noqa: E402
from vcodec.baselayer.learned.base_codec import frame_to_tensor  # noqa: E402
from vcodec.baselayer.learned.plugin import default_base_model  # noqa: E402
from vcodec.detection.evaluate import map_against  # noqa: E402
from vcodec.io.frame import Frame  # noqa: E402

#: clip, frames per second (README), max held-out frames benchmarked
BENCH_CLIPS = [
    ("cars_320x240.i420", 30.0, 30),
    ("CiscoVT2people_320x192_12fps.yuv", 12.0, 30),
    ("VID_1920x1080_cabac_temporal_direct.264", 30.0, 11),
    ("Zhling_1280x720.264", 30.0, 30),
    ("one-by-one-person-detection.mp4", 10.0, 30),
]


def held_out(name: str, limit: int) -> list[Frame]:
    """The first ``limit`` frames of the clip's last 20% (the training hold-out), full resolution."""
    path = CLIPS / name
    if path.suffix == ".mp4":  # long clip: do not hold all of it in memory
        import av

        with av.open(str(path)) as c:
            total = c.streams.video[0].frames
            start = total - max(3, int(math.ceil(total * 0.2)))
            out = []
            for i, f in enumerate(c.decode(video=0)):
                if i >= start:
                    out.append(Frame.from_rgb(f.to_ndarray(format="rgb24"), index=i))
                if len(out) >= limit:
                    break
            return out
    rgb = read_clip(path, max_long_side=100000, step=1)
    _, val = split_clip(rgb)
    return [Frame.from_rgb(f, index=i) for i, f in enumerate(val[:limit])]


def psnr_y(a: Frame, b: Frame) -> float:
    mse = float(np.mean((a.y.astype(np.float64) - b.y.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def reference_detections(codec: BaseCodec, det: Any, frames: list[Frame], long_side: int | None = None
                         ) -> list[Any]:
    """The detector on the uncompressed picture in the base layer's geometry (at ``long_side``)."""
    out = []
    for f in frames:
        g = codec.geometry(f.width, f.height, long_side)
        x = frame_to_tensor(f, g)
        bgr = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])
        t, _ = det.prepare(bgr, mode="pad", multiple=64)
        with torch.no_grad():
            out.append(det.back(det.front(t), g.to_detector())[0])
    return out


def code_clip(codec: BaseCodec, det: Any, frames: list[Frame], quality: float, intra_period: int
              ) -> dict[str, Any]:
    enc, dec = codec.encoder(quality, intra_period), codec.decoder()
    bits_i, bits_p, psnrs, dets = [], [], [], []
    for f in frames:
        payload, x_base = enc.encode_frame(f)
        p = BasePayload.from_bytes(payload)
        (bits_i if p.intra else bits_p).append(8 * len(payload))
        y = dec.decode_frame(payload)
        dets.append(codec.detect(y, det, dec.last_geometry))
        assert x_base is not None
        psnrs.append(psnr_y(f, x_base))
    return {"bits_i": bits_i, "bits_p": bits_p, "psnr": psnrs, "dets": dets}


def speed(codec: BaseCodec, det: Any, frames: list[Frame], quality: float) -> dict[str, float]:
    import cv2

    small = [Frame.from_rgb(cv2.resize(f.to_rgb(), (416, 240), interpolation=cv2.INTER_AREA), index=i)
             for i, f in enumerate(frames)]
    res: dict[str, float] = {}
    for label, recon in (("encode_fps_with_x_base", True), ("encode_fps_latent_only", False)):
        enc = codec.encoder(quality, 32)
        enc.encode_frame(small[0], reconstruct=recon)  # warm-up
        enc.reset()
        t = time.perf_counter()
        payloads = [enc.encode_frame(f, reconstruct=recon)[0] for f in small]
        res[label] = round(len(small) / (time.perf_counter() - t), 2)
    dec = codec.decoder()
    dec.decode_frame(payloads[0])
    dec.reset()
    t = time.perf_counter()
    for p in payloads:
        y = dec.decode_frame(p)
        codec.detect(y, det, dec.last_geometry)
    res["decode_detect_fps"] = round(len(small) / (time.perf_counter() - t), 2)
    dec.reset()
    t = time.perf_counter()
    for p in payloads:
        dec.decode_frame(p)
    res["decode_only_fps"] = round(len(small) / (time.perf_counter() - t), 2)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_base_model(), help="base model id or .json/.pt path")
    ap.add_argument("--qualities", default="0,0.25,0.5,0.75,1", help="comma-separated base qualities")
    ap.add_argument("--intra-period", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-frames", type=int, default=30, help="held-out frames per clip (cap)")
    ap.add_argument(
        "--speed-threads", default="1,2", help="torch thread counts for the speed runs (\"\" for none)"
    )
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = BaseCodec.from_weights(args.model)
    det = load_detector(codec.cfg.detector).eval()
    clips = [(n, fps, held_out(n, min(lim, args.max_frames))) for n, fps, lim in BENCH_CLIPS
             if (CLIPS / n).exists()]
    refs = {n: reference_detections(codec, det, fr) for n, _, fr in clips}
    report: dict[str, Any] = {"model": codec.model_id, "sha256": codec.sha256, "threads": args.threads,
                              "intra_period": args.intra_period, "points": []}
    print(f"model {codec.model_id} ({codec.sha256[:12]}), detector {codec.cfg.detector}, "
          f"{args.threads} threads; held-out frames: " + ", ".join(f"{n} {len(f)}" for n, _, f in clips))
    print(f"{'quality':>7} {'kbit/s':>8} {'bits/I':>8} {'bits/P':>8} {'mAP50':>6} {'PSNR-Y':>6}  "
          "per clip kbit/s")
    for q in [float(s) for s in args.qualities.split(",")]:
        all_ref, all_pred, bi, bp, ps, kb = [], [], [], [], [], {}
        for n, fps, fr in clips:
            r = code_clip(codec, det, fr, q, args.intra_period)
            all_ref += refs[n]
            all_pred += r["dets"]
            bi += r["bits_i"]
            bp += r["bits_p"]
            ps += r["psnr"]
            kb[n] = round(sum(r["bits_i"] + r["bits_p"]) / len(fr) * fps / 1000, 1)
        m = map_against(all_ref, all_pred)
        point = {
            "quality": q,
            "kbps_mean": round(float(np.mean(list(kb.values()))), 1),
            "kbps": kb,
            "bits_per_i": round(float(np.mean(bi)), 0),
            "bits_per_p": round(float(np.mean(bp)), 0) if bp else None,
            "map50": round(m["map50"], 4),
            "map": round(m["map"], 4),
            "num_ref": m["num_ref"],
            "psnr_y_x_base": round(float(np.mean(ps)), 2),
        }
        report["points"].append(point)
        print(
            f"{q:7.2f} {point['kbps_mean']:8.1f} {point['bits_per_i']:8.0f} {point['bits_per_p'] or 0:8.0f} "
            f"{point['map50']:6.3f} {point['psnr_y_x_base']:6.2f}  {kb}",
            flush=True,
        )
    cars = [fr for n, _, fr in clips if n.startswith("cars")]
    if cars:
        ip = {}
        for q in (0.25, 0.5, 0.75):
            r_p = code_clip(codec, det, cars[0], q, args.intra_period)
            r_i = code_clip(codec, det, cars[0], q, 1)
            p_bits = float(np.mean(r_p["bits_p"]))
            i_bits = float(np.mean(r_i["bits_i"][1:]))  # the same frames, coded as I
            ip[str(q)] = {"bits_per_p": round(p_bits), "same_frames_as_i": round(i_bits),
                          "saving_pct": round(100 * (1 - p_bits / i_bits), 1)}
        report["cars_p_vs_i"] = ip
        print(f"cars clip, P-frame bits vs the same frames as I (target >= 40% saving): {ip}")
    speed_frames = next((fr for n, _, fr in clips if n.endswith(".mp4")), clips[0][2])
    report["speed_416x240"] = {}
    for th in [int(s) for s in args.speed_threads.split(",") if s.strip()]:  # "" skips the speed runs
        torch.set_num_threads(th)
        load = os.getloadavg()[0]
        r = speed(codec, det, speed_frames, 0.5)
        r["load_average_1min_before"] = round(load, 2)
        report["speed_416x240"][f"{th}_threads"] = r
        print(f"speed at 416x240, {th} torch threads (targets on 2 cores: encode >= 10, decode+detect >= 15 "
              f"frames/s; machine load average {load:.1f} before): {r}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
