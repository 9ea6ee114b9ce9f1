#!/usr/bin/env python
"""Convert the YOLOX-Nano ONNX export into the weights vcodec ships (``vcodec/weights/yolox-nano.pt``).

YOLOX-Nano is Megvii's (https://github.com/Megvii-BaseDetection/YOLOX), under
the Apache License 2.0.  This script

1. loads the ONNX export into the native port (:mod:`vcodec.detection.yolox`,
   BatchNorm folded, weights copied convolution by convolution),
2. writes its state dict as ``vcodec/weights/yolox-nano.pt`` (format
   ``vcodec-detector-weights``) and the record ``yolox-nano.json`` with the
   sha256 of both the new file and the ONNX file it was made from, the origin
   and the licence,
3. copies the licence text beside it (``LICENSE-YOLOX-Apache-2.0.txt``), and
4. checks on real frames that the shipped file gives exactly the outputs of
   the port loaded from the ONNX file (the record keeps the largest difference).

    python tools/ship_yolox_nano.py                       # ../shared/models/yolox_nano/
    python tools/ship_yolox_nano.py --onnx other/yolox_nano.onnx --license other/LICENSE
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vcodec.detection.clips import iter_clip_bgr  # noqa: E402
from vcodec.detection.shipped import DETECTOR_FORMAT, WEIGHTS_DIR, load_shipped_yolox  # noqa: E402
from vcodec.detection.weights import sha256_of  # noqa: E402
from vcodec.detection.yolox import build_yolox  # noqa: E402

SHARED = REPO.parent / "shared"
LICENSE_NAME = "LICENSE-YOLOX-Apache-2.0.txt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=SHARED / "models" / "yolox_nano" / "yolox_nano.onnx")
    ap.add_argument("--license", type=Path,
                    default=SHARED / "models" / "yolox_nano" / "LICENSE_YOLOX_Apache-2.0")
    ap.add_argument("--clips", type=Path, default=SHARED / "data" / "clips", help="real frames for the check")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for p in (args.onnx, args.license):
        if not p.is_file():
            raise SystemExit(f"{p} does not exist")
    port = build_yolox("nano", args.onnx)
    pt = WEIGHTS_DIR / "yolox-nano.pt"
    state = {k: v.detach().clone().contiguous() for k, v in port.state_dict().items()}
    torch.save({"format": DETECTOR_FORMAT, "version": 1, "detector": "yolox-nano", "state_dict": state}, pt)
    shutil.copyfile(args.license, WEIGHTS_DIR / LICENSE_NAME)
    record = {
        "name": "yolox-nano",
        "format": f"{DETECTOR_FORMAT}: torch.save dict, 'state_dict' = vcodec.detection.yolox.YOLOX('nano') "
                  "after fuse() (every BatchNorm folded into its convolution)",
        "sha256": sha256_of(pt),
        "size_bytes": pt.stat().st_size,
        "parameters": port.num_parameters(),
        "classes": "COCO80 (all 80)",
        "input": "BGR float32 0..255, no normalisation, pad/letterbox grey 114",
        "source": {
            "file": args.onnx.name,
            "sha256": sha256_of(args.onnx),
            "origin": "YOLOX-Nano by Megvii Inc. (https://github.com/Megvii-BaseDetection/YOLOX), "
                      "official ONNX export",
            "licence": "Apache-2.0",
            "licence_file": LICENSE_NAME,
            "notice": "NOTICE",
        },
        "conversion": "tools/ship_yolox_nano.py: the ONNX initializers mapped onto the port's convolutions "
                      "in "
                      "execution order (YOLOX.load_onnx); values copied exactly",
    }
    (WEIGHTS_DIR / "yolox-nano.json").write_text(json.dumps(record, indent=2) + "\n")
    shipped = load_shipped_yolox("nano")
    worst = 0.0
    for clip in ("cars_320x240.i420", "one-by-one-person-detection.mp4"):
        for _, bgr in iter_clip_bgr(args.clips / clip, step=40, max_frames=3):
            x, _ = port.prepare(bgr, mode="pad")
            with torch.no_grad():
                worst = max(worst, float((shipped(x) - port(x)).abs().max()))
    record["check"] = {"max_abs_diff_vs_onnx_port_on_real_frames": worst}
    (WEIGHTS_DIR / "yolox-nano.json").write_text(json.dumps(record, indent=2) + "\n")
    if worst != 0.0:
        raise SystemExit(f"the shipped weights differ from the ONNX port by {worst}")
    print(f"wrote {pt} ({record['size_bytes']} bytes, sha256 {record['sha256'][:16]}...), "
          f"from {args.onnx} ({record['source']['sha256'][:16]}...); identical outputs on real frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
