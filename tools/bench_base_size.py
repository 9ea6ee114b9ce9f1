#!/usr/bin/env python
"""The base layer's working size (`--base-size`): rate and mAP at long sides 416, 640 and 832.

For each clip (1080p, 720p, 768x432) and base quality, the base layer is coded
at each working size; its detections (the detector's back end on T(y_hat),
boxes mapped back to source pixels) are scored against ONE reference for all
sizes: YOLOX-Nano on the uncompressed frames at the largest size measured
(832 by default), so a smaller working size pays for the objects it loses.
Reports base kbit/s and mAP@0.5 side by side, and BD-rate of each size against
832 on (kbit/s, mAP@0.5), on the curves' monotone upper envelopes.

    python tools/bench_base_size.py --frames 16 --json /tmp/base_size.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_base import reference_detections  # noqa: E402
from bench_ptools import add_common_arguments, load_model_and_detector, read_frames  # noqa: E402
from train_base import CLIPS  # noqa: E402

from vcodec.baselayer.learned.plugin import default_base_model  # noqa: E402
from vcodec.detection.evaluate import map_against  # noqa: E402
from vcodec.eval.bdrate import bd_rate_result  # noqa: E402

#: clip, first frame, frames per second
SIZE_CLIPS = [("VID_1920x1080_cabac_temporal_direct.264", 0, 30.0), ("Zhling_1280x720.264", 0, 30.0),
              ("one-by-one-person-detection.mp4", 75, 10.0)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_base_model())
    ap.add_argument("--sizes", default="416,640,832")
    ap.add_argument("--qualities", default="0.5,0.75,1.0")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--intra-period", type=int, default=32)
    add_common_arguments(ap)
    args = ap.parse_args(argv)
    codec, det = load_model_and_detector(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    qualities = [float(s) for s in args.qualities.split(",")]
    report: dict[str, Any] = {"model": codec.model_id, "frames": args.frames,
                              "reference_long_side": max(sizes),
                              "clips": {}}
    for name, start, fps in SIZE_CLIPS:
        if not (CLIPS / name).exists():
            continue
        frames = read_frames(name, start, args.frames)
        refs = reference_detections(codec, det, frames, max(sizes))
        rows: dict[int, list[dict[str, float]]] = {}
        for size in sizes:
            rows[size] = []
            for q in qualities:
                enc, dec = codec.encoder(q, args.intra_period, long_side=size), codec.decoder(long_side=size)
                bits, dets = 0, []
                for f in frames:
                    payload, _ = enc.encode_frame(f, reconstruct=False)
                    bits += 8 * len(payload)
                    y = dec.decode_frame(payload)
                    dets.append(codec.detect(y, det, dec.last_geometry))
                kbps = bits / len(frames) * fps / 1000
                m50 = float(map_against(refs, dets)["map50"])
                rows[size].append({"quality": q, "kbps": round(kbps, 2), "map50": round(m50, 4)})
                print(f"{name[:28]:28} long side {size:4d} q={q:.2f}: {kbps:8.1f} kbit/s  mAP@0.5 {m50:.3f}",
                      flush=True)
        bd = {}
        top = max(sizes)
        for size in sizes:
            if size == top:
                continue
            r = bd_rate_result([p["kbps"] for p in rows[top]], [p["map50"] for p in rows[top]],
                               [p["kbps"] for p in rows[size]], [p["map50"] for p in rows[size]])
            bd[str(size)] = None if r.value is None else round(r.value, 1)
            print(f"{name[:28]:28} BD-rate long side {size} vs {top} (mAP@0.5, envelope): "
                  f"{'n/a (' + str(r.reason) + ')' if r.value is None else f'{r.value:+.1f} %'}")
        report["clips"][name] = {"start": start, "rows": {str(k): v for k, v in rows.items()},
                                 "bd_vs_top": bd}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
