#!/usr/bin/env python
"""The decoder's exact networks (vcodec.detection.exact) against plain PyTorch copies.

Encodes and decodes the first frames of a clip with the shipped base model, then on each
decoded latent times, in one process and one torch thread (``--threads``), alternating round by round:

* **T**: ``copy.deepcopy(net.T).double()`` against ``to_float64(net.T)``, and
* **back end**: the analytics detector's float64 copy made both ways, ``back()`` on the
  rounded features (what ``BaseCodec.features`` and ``BaseCodec.detect`` ran until the
  analytics path moved to float32);
* **g_s**: ``copy.deepcopy(net.g_s).double()`` against ``to_float64(net.g_s)`` (what
  ``BaseCodec.reconstruct_tensor`` runs for x_base, the enhancement layer's predictor);
* **exact32**: ``to_float32_exact`` T and back end, what ``BaseCodec.features`` and
  ``BaseCodec.detect`` run now (float32, thread-independent);
* for scale, the float32 originals (``T_f32``, ``back_f32``: PyTorch's own float32 layers; their last
  bits follow the thread count, which is why the decoder does not run them).

It also checks that both give the same results: T within 1e-12 (relative to its largest
value), identical features after the 2**-12 rounding, identical detections, and identical 8-bit
base pictures from both g_s copies.

    python tools/bench_exact.py sequences/synthetic_416x240_30.y4m --frames 8 --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _detections(d: Any) -> bytes:
    return bytes(d.boxes.tobytes() + d.scores.tobytes() + d.class_ids.tobytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="video file")
    ap.add_argument("--frames", type=int, default=8, help="frames to decode and time (default 8)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (default 5)")
    ap.add_argument(
        "--base-model", default=None, help="base model id or .json (default: the package default)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vcodec.baselayer import get_base_factory, kind_for_mode
    from vcodec.detection.exact import to_float32_exact, to_float64
    from vcodec.io import open_video

    base: Any = get_base_factory(kind_for_mode("learned")).for_encoding(args.base_model)
    detector = base.analytics_detector(base.build_detector())
    with open_video(args.input, frames=args.frames) as reader:
        clip = list(reader)
    enc, dec = base.encoder(0.5, 32), base.decoder()
    decoded = []
    for i, frame in enumerate(clip):
        payload, _ = enc.encode_frame(frame, i == 0)
        y, geometry = dec.decode_frame(payload, i == 0), dec.last_geometry
        assert geometry is not None  # set by decode_frame
        decoded.append((y.double(), geometry.to_detector()))

    net = base.codec.net
    with torch.no_grad():
        t_plain: torch.nn.Module = copy.deepcopy(net.T).double().eval()
        t_fast = to_float64(net.T)
        d_plain: Any = copy.deepcopy(detector).double().eval()
        d_fast: Any = to_float64(detector)
        t_exact32 = to_float32_exact(net.T)
        d_exact32: Any = to_float32_exact(detector)
        gs_plain: torch.nn.Module = copy.deepcopy(net.g_s).double().eval()
        gs_fast = to_float64(net.g_s)

        def samples(x: torch.Tensor) -> torch.Tensor:  # what tensor_to_frame keeps: 8-bit values
            return torch.round(x.clamp(0, 1) * 255.0)

        def rounded(f: torch.Tensor) -> torch.Tensor:
            return (torch.round(f * 4096.0) / 4096.0).float().double()

        worst, same_features, same_detections, same_pictures = 0.0, True, True, True
        features = []
        for y, geometry in decoded:
            a, b = t_fast(y), t_plain(y)
            worst = max(worst, float((a - b).abs().max() / b.abs().max()))
            same_features &= bool(torch.equal(rounded(a), rounded(b)))
            features.append((rounded(b), geometry))
            same_pictures &= bool(torch.equal(samples(gs_fast(y)), samples(gs_plain(y))))
            same_detections &= (_detections(d_fast.back(rounded(b), geometry)[0])
                                == _detections(d_plain.back(rounded(b), geometry)[0]))

        stages = {
            "T_plain": lambda: [t_plain(y) for y, _ in decoded],
            "T_fast": lambda: [t_fast(y) for y, _ in decoded],
            "back_plain": lambda: [d_plain.back(f, g) for f, g in features],
            "back_fast": lambda: [d_fast.back(f, g) for f, g in features],
            "gs_plain": lambda: [gs_plain(y) for y, _ in decoded],
            "gs_fast": lambda: [gs_fast(y) for y, _ in decoded],
            "T_exact32": lambda: [t_exact32(y.float()) for y, _ in decoded],
            "back_exact32": lambda: [d_exact32.back(f.float(), g) for f, g in features],
            "T_f32": lambda: [net.T(y.float()) for y, _ in decoded],
            "back_f32": lambda: [detector.back(f.float(), g) for f, g in features],
        }
        for fn in stages.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in stages}
        for _ in range(args.rounds):
            for name, fn in stages.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) / len(decoded) * 1e3)

    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "input": str(args.input), "frames": len(decoded), "rounds": args.rounds,
        "size": [clip[0].width, clip[0].height], "threads": torch.get_num_threads(),
        "ms_per_frame_median": {k: round(v, 2) for k, v in med.items()},
        "ms_per_frame_min": {k: round(min(v), 2) for k, v in times.items()},
        "speedup_T": round(med["T_plain"] / med["T_fast"], 3),
        "speedup_back": round(med["back_plain"] / med["back_fast"], 3),
        "speedup_T_plus_back": round((med["T_plain"] + med["back_plain"])
                                     / (med["T_fast"] + med["back_fast"]), 3),
        "speedup_gs": round(med["gs_plain"] / med["gs_fast"], 3),
        "T_max_rel_diff": worst, "features_identical": same_features, "detections_identical": same_detections,
        "base_pictures_identical": same_pictures,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if same_features and same_detections and same_pictures and worst < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
