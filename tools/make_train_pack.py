#!/usr/bin/env python
"""Sample the shared clips into ONE self-contained training pack for tools/train_base.py.

The pack is a single ``.npz`` (at most ``--max-mib``, default 64 MiB) that a training run can
carry to any machine (a CUDA box included) without ../shared:

* ``seqs``: N x T x S x S x 3 uint8 RGB -- GOP sequences, T consecutive frames (or every
  ``gap``-th frame) of one clip, the same S x S crop in every frame, taken from the frame in
  the base layer's geometry (long side > 832 downscaled with an area filter, like the codec);
* ``record``: a JSON string (also written beside the pack as ``<pack>.json``) naming every
  clip (path, sha256, frame count, scale), its held-out frames, and for every sequence the
  clip, the frame indexes and the crop position.

Held-out frames are never packed: per clip the last ``--holdout`` share of its frames
(as the earlier training runs held out) plus the frames that ``tools/bench_ptools.py``
measures on (one-by-one 60..91, car-detection 200..231, CiscoVT2people 0..31), so the
P-frame benchmark runs on frames no model trained from a pack has seen.

    python tools/make_train_pack.py --out runs/pack/gop8-192.npz
    python tools/make_train_pack.py --out /tmp/tiny.npz --max-mib 1 --clips cars_320x240.i420
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from train_base import CLIPS, read_clip  # noqa: E402

from vcodec.baselayer.learned.base_codec import PAD_VALUE  # noqa: E402
from vcodec.hashing import file_sha256  # noqa: E402

#: frames tools/bench_ptools.py measures on (start, count): always held out
BENCH_WINDOWS: dict[str, tuple[int, int]] = {
    "one-by-one-person-detection.mp4": (60, 32),
    "car-detection.mp4": (200, 32),
    "CiscoVT2people_320x192_12fps.yuv": (0, 32),
}

#: (clip path relative to the clips folder, relative sampling weight)
DEFAULT_CLIPS: list[tuple[str, float]] = [
    ("cars_320x240.i420", 1.0),
    ("CiscoVT2people_320x192_12fps.yuv", 0.5),
    ("VID_1920x1080_cabac_temporal_direct.264", 1.0),
    ("Zhling_1280x720.264", 0.5),
    ("one-by-one-person-detection.mp4", 3.0),
    ("car-detection.mp4", 3.0),
    ("bottle-detection.mp4", 2.0),
] + [(f"asl_gestures/{n}.mkv", 0.25) for n in (
    "again", "bird", "book", "brother", "eat", "help", "hungry", "learn", "milk", "night", "no",
    "please", "school", "sister", "sorry", "student", "thanks", "walk", "want", "yes")]


def held_out(name: str, n_frames: int, holdout: float) -> list[tuple[int, int]]:
    """Held-out frame ranges [start, stop) of one clip."""
    n_val = max(1, int(np.ceil(n_frames * holdout)))
    ranges = [(n_frames - n_val, n_frames)]
    if name in BENCH_WINDOWS:
        s, c = BENCH_WINDOWS[name]
        ranges.insert(0, (s, min(n_frames, s + c)))
    return ranges


def _is_held(i: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= i < b for a, b in ranges)


def crop_seq(frames: list[np.ndarray], idx: list[int], y0: int, x0: int, size: int) -> np.ndarray:
    out = np.full((len(idx), size, size, 3), PAD_VALUE, dtype=np.uint8)
    for k, i in enumerate(idx):
        p = frames[i][y0:y0 + size, x0:x0 + size]
        out[k, : p.shape[0], : p.shape[1]] = p
    return out


def build(clips: list[tuple[str, float]], out: Path, size: int, length: int, max_mib: float,
          holdout: float, seed: int, max_long_side: int = 832) -> dict[str, Any]:
    rng = random.Random(seed)
    budget = int(max_mib * (1 << 20) * 0.97)  # the npz container adds a little
    clip_recs: list[dict[str, Any]] = []
    candidates: list[list[tuple[dict[str, Any], np.ndarray]]] = []
    weights: list[float] = []
    for rel, weight in clips:
        path = CLIPS / rel
        if not path.exists():
            print(f"{rel}: missing, skipped", flush=True)
            continue
        frames = read_clip(path, max_long_side)
        n = len(frames)
        h, w = frames[0].shape[:2]
        ranges = held_out(path.name, n, holdout)
        rec = {"clip": rel, "sha256": file_sha256(path), "frames": n, "coded_size": [w, h],
               "held_out": [list(r) for r in ranges], "weight": weight}
        # every start whose frames are all trainable, for gaps 1 and 2
        starts = [(t0, gap) for gap in (1, 2) for t0 in range(0, n - gap * (length - 1))
                  if not any(_is_held(t0 + gap * k, ranges) for k in range(length))]
        rec["train_frames"] = int(sum(1 for i in range(n) if not _is_held(i, ranges)))
        clip_recs.append(rec)
        pool: list[tuple[dict[str, Any], np.ndarray]] = []
        if starts:
            # more candidates than will fit; the budget loop below takes them round-robin by weight
            for _ in range(max(4, int(60 * weight))):
                t0, gap = starts[rng.randrange(len(starts))]
                y0 = rng.randrange(max(1, h - size + 1))
                x0 = rng.randrange(max(1, w - size + 1))
                idx = [t0 + gap * k for k in range(length)]
                pool.append(({"clip": len(clip_recs) - 1, "frames": idx, "y0": y0, "x0": x0},
                             crop_seq(frames, idx, y0, x0, size)))
        candidates.append(pool)
        weights.append(weight if pool else 0.0)
        print(f"{rel}: {n} frames {w}x{h}, held out {ranges}, {len(starts)} trainable windows", flush=True)
        del frames
    # take sequences clip by clip in proportion to the weights until the compressed budget is met
    taken: list[tuple[dict[str, Any], np.ndarray]] = []
    used = 0
    credit = [0.0] * len(candidates)
    while used < budget and any(candidates):
        for c, pool in enumerate(candidates):
            if not pool:
                continue
            credit[c] += weights[c]
            while credit[c] >= 1.0 and pool and used < budget:
                credit[c] -= 1.0
                meta, arr = pool.pop()
                cost = len(zlib.compress(arr.tobytes(), 6))
                if used + cost > budget:
                    pool.clear()
                    break
                used += cost
                taken.append((meta, arr))
    if not taken:
        raise SystemExit("no sequence fits: lower --size/--length or raise --max-mib")
    record = {"format": "vcodec-train-pack", "version": 1, "crop": size, "length": length,
              "max_long_side": max_long_side, "holdout": holdout, "seed": seed, "clips": clip_recs,
              "sequences": [m for m, _ in taken],
              "per_clip": {}}
    seqs = np.stack([a for _, a in taken])
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        record["per_clip"] = {r["clip"]: sum(1 for m in record["sequences"] if m["clip"] == i)
                              for i, r in enumerate(clip_recs)}
        np.savez_compressed(out, seqs=seqs, record=np.array(json.dumps(record)))
        mib = out.stat().st_size / (1 << 20)
        if mib <= max_mib:
            break
        keep = int(len(seqs) * 0.9)  # estimate was short: drop the last tenth and rewrite
        seqs, record["sequences"] = seqs[:keep], record["sequences"][:keep]
    record["file_mib"] = round(mib, 2)
    record["file_sha256"] = file_sha256(out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}: {len(seqs)} sequences of {length} x {size}x{size}, {mib:.1f} MiB; "
          f"per clip {record['per_clip']}", flush=True)
    return record


def load_pack(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(N x T x S x S x 3 uint8, record) of a pack written by :func:`build`."""
    with np.load(path, allow_pickle=False) as z:
        seqs = z["seqs"]
        record = json.loads(str(z["record"]))
    if record.get("format") != "vcodec-train-pack":
        raise SystemExit(f"{path} is not a vcodec training pack")
    return seqs, record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "pack" / "gop8-192.npz")
    ap.add_argument("--size", type=int, default=192, help="crop side in pixels (multiple of 64)")
    ap.add_argument("--length", type=int, default=8, help="frames per GOP sequence (>= 5: I + 4 P)")
    ap.add_argument("--max-mib", type=float, default=64.0)
    ap.add_argument("--holdout", type=float, default=0.2, help="share of each clip's last frames held out")
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: all shared clips)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.size % 64 or args.size <= 0:
        ap.error("--size must be a positive multiple of 64 (the codec's padding unit)")
    if args.length < 2:
        ap.error("--length must be at least 2")
    clips = DEFAULT_CLIPS
    if args.clips:
        wanted = args.clips.split(",")
        clips = [(c, w) for c, w in DEFAULT_CLIPS if c in wanted or Path(c).name in wanted]
    build(clips, args.out, args.size, args.length, args.max_mib, args.holdout, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
