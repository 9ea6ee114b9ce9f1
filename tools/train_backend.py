#!/usr/bin/env python
"""Fine-tune YOLOX-Nano's back end on the base layer's decoded features (CPU, distillation).

The base layer's decoder hands the detector T(y_hat), an approximation of the
clean split features F(x).  This script adapts the detector's back end (dark4,
dark5, PAFPN neck, head) to T(y_hat) of one shipped base model, so that its
outputs on T(y_hat) match the *clean* detector's outputs on F(x) of the same
frame:

1. **Data** (cached in ``OUT/cache/``; rerunning reuses it): segments of
   consecutive frames of the shared clips, each coded as a real sequence by
   the base model (first frame intra, the rest P-frames, the encoder's
   default coding tools, so skipped blocks and hyperprior reuse are in the
   features) at one or more qualities out of ``QUALITIES`` (round robin); per
   coded frame T(y_hat) (float16), per frame the clean features F(x) in the
   same geometry (the detector's front on the padded picture).  Only frames
   before each clip's held-out tail are used (``TRAIN_SEGMENTS``); the held-out
   frames of ``tools/bench_base.py`` are coded at 0, 0.25, 0.5, 0.75 and 1 for
   the validation loss.
2. **Training**: student = a copy of the clean back end; per sample a crop of
   at most 32 x 48 feature cells (aligned to 4 cells, the stride-32 grid) of
   T(y_hat) and the same crop of F(x); the teacher (the clean back end, frozen)
   runs on the F(x) crop.  Loss per anchor: objectness BCE against the
   teacher's objectness probability (every anchor), class BCE against its 80
   class probabilities and L1 on the raw box regression (both weighted by the
   teacher's objectness); normalised by max(1, summed teacher objectness).
   AdamW, warm-up then cosine decay over the step or time budget, whichever
   ends first.  One torch thread, seeded, checkpoint every ``--ckpt-every``
   steps to ``OUT/last.pt``; rerunning the same command resumes.
3. ``--ship`` writes ``vcodec/weights/backend-<base model>.pt`` and its record
   ``.json`` (sha256, base model id and sha256, the clean detector's weights
   sha256, data, steps, losses, validation losses plain vs adapted).

Run in the background (about 30 minutes on one core)::

    nohup python tools/train_backend.py --out runs/train_backend --minutes 20 --ship \\
        > runs/train_backend.out 2>&1 &

``tools/bench_backend.py`` then measures mAP@0.5 per clip and quality.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from vcodec.baselayer.learned.plugin import default_base_model  # noqa: E402
from vcodec.baselayer.learned.tools import CodingTools  # noqa: E402
from vcodec.detection.clips import iter_clip_bgr  # noqa: E402
from vcodec.detection.weights import sha256_of  # noqa: E402
from vcodec.detection.yolox import FRONT_PREFIXES, YOLOX, build_yolox, flatten_levels  # noqa: E402
from vcodec.io.frame import Frame  # noqa: E402

SHARED = REPO.parent / "shared"
CLIPS = SHARED / "data" / "clips"
TEACHER_ONNX = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
WEIGHTS_DIR = REPO / "vcodec" / "weights"

#: qualities the training segments are coded at, in round-robin order (more weight below 0.5,
#: where the features are furthest from F(x))
QUALITIES = [0.0, 0.5, 0.25, 0.75, 0.125, 1.0, 0.375, 0.625]
#: held-out qualities for the validation loss (the ones the benchmark reports)
VAL_QUALITIES = [0.0, 0.25, 0.5, 0.75, 1.0]


@dataclass(frozen=True)
class Segment:
    """Frames ``start .. start + length - 1`` of ``clip``, coded once per quality in ``qualities``."""

    clip: str
    start: int
    length: int
    qualities: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{Path(self.clip).name}_{self.start}-{self.start + self.length - 1}"


def training_segments() -> list[Segment]:
    """The training data: frames before each clip's held-out tail (last 20%) only."""
    plan: list[tuple[str, list[int], int, int, int]] = [
        # clip, segment starts, segment length, first held-out frame, qualities per segment
        ("cars_320x240.i420", [0], 24, 24, 8),
        ("CiscoVT2people_320x192_12fps.yuv", [0], 6, 6, 8),
        ("VID_1920x1080_cabac_temporal_direct.264", [0, 16, 32], 16, 43, 2),
        ("Zhling_1280x720.264", [0], 15, 15, 4),
        # people from frame 60 on; tools/bench_base.py holds out 1115-1144
        ("one-by-one-person-detection.mp4", list(range(60, 1061, 80)), 16, 1115, 2),
        # cars pass at ~100-103, 183-184, 210-243; the last 20% (302-376) is held out
        ("car-detection.mp4", [90, 176, 208, 228], 16, 302, 2),
        ("bottle-detection.mp4", [0, 300, 600, 900], 16, 951, 1),
        ("asl_gestures/again.mkv", [0], 16, 16, 2),
        ("asl_gestures/bird.mkv", [0], 16, 16, 2),
        ("asl_gestures/book.mkv", [0], 16, 16, 2),
        ("asl_gestures/brother.mkv", [0], 16, 16, 2),
    ]
    out: list[Segment] = []
    k = 0
    for clip, starts, length, held_out_from, nq in plan:
        if not (CLIPS / clip).exists():
            continue
        for s in starts:
            qs = [QUALITIES[(k + j) % len(QUALITIES)] for j in range(nq)]
            k += nq
            out.append(Segment(clip, s, min(length, held_out_from - s), tuple(sorted(qs))))
    return out


def log(out: Path, msg: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    with open(out / "train.log", "a") as f:
        f.write(line + "\n")


# -- data ------------------------------------------------------------------------------
def read_frames(clip: str, indices: set[int]) -> dict[int, Frame]:
    want = max(indices) + 1
    got: dict[int, Frame] = {}
    for i, bgr in iter_clip_bgr(CLIPS / clip, max_frames=want):
        if i in indices:
            got[i] = Frame.from_rgb(np.ascontiguousarray(bgr[..., ::-1]), index=i)
    missing = sorted(indices - set(got))
    if missing:
        raise SystemExit(f"{clip}: frames {missing[:5]} do not exist")
    return got


def clean_features(codec: Any, det: YOLOX, frame: Frame) -> torch.Tensor:
    """F(x): the detector's front on the picture as the base layer sees it (scaled, padded)."""
    from vcodec.baselayer.learned.base_codec import frame_to_tensor

    g = codec.geometry(frame.width, frame.height)
    x = frame_to_tensor(frame, g)
    bgr = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])
    t, _ = det.prepare(bgr, mode="pad", multiple=64)
    with torch.no_grad():
        return det.front(t)[0]


def code_sequence(codec: Any, frames: list[Frame], quality: float) -> list[torch.Tensor]:
    """T(y_hat) of each frame, coded as one sequence (first intra, then P-frames)."""
    enc = codec.encoder(quality, 32)
    out = []
    for f in frames:
        enc.encode_frame(f, reconstruct=False)
        out.append(codec.features(enc.last_y_hat)[0].half())
    return out


def build_cache(out: Path, codec: Any, det: YOLOX, segments: list[Segment]) -> None:
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for seg in segments:
        target = cache / f"{seg.key}.pt"
        if target.exists():
            continue
        t0 = time.perf_counter()
        frames = read_frames(seg.clip, set(range(seg.start, seg.start + seg.length)))
        ordered = [frames[i] for i in sorted(frames)]
        clean = [clean_features(codec, det, f).half() for f in ordered]
        coded = {q: code_sequence(codec, ordered, q) for q in seg.qualities}
        torch.save({"segment": asdict(seg), "frames": sorted(frames), "clean": clean, "coded": coded},
                   target.with_suffix(".tmp"))
        target.with_suffix(".tmp").rename(target)
        log(out, f"cached {seg.key} q={list(seg.qualities)} ({len(ordered)} frames, "
                 f"{time.perf_counter() - t0:.0f} s)")
    val = cache / "val.pt"
    if not val.exists():
        from bench_base import BENCH_CLIPS, held_out

        t0 = time.perf_counter()
        items = {}
        for name, _fps, limit in BENCH_CLIPS:
            if not (CLIPS / name).exists():
                continue
            frames = held_out(name, limit)
            items[name] = {"frames": [f.index for f in frames],
                           "clean": [clean_features(codec, det, f).half() for f in frames],
                           "coded": {q: code_sequence(codec, frames, q) for q in VAL_QUALITIES}}
        torch.save(items, val)
        log(out, f"cached held-out validation set ({time.perf_counter() - t0:.0f} s)")


def load_cache(out: Path, segments: list[Segment]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict]:
    samples: list[tuple[torch.Tensor, torch.Tensor]] = []
    for seg in segments:
        blob = torch.load(out / "cache" / f"{seg.key}.pt", weights_only=True)
        for feats in blob["coded"].values():
            samples += list(zip(feats, blob["clean"], strict=True))
    val = torch.load(out / "cache" / "val.pt", weights_only=True)
    return samples, val


# -- model and loss -----------------------------------------------------------------------
def back_state(det: YOLOX) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in det.state_dict().items() if not k.startswith(FRONT_PREFIXES)}


def distill_terms(student: YOLOX, teacher: YOLOX, coded: torch.Tensor, clean: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    """Objectness / class / box terms of the student on ``coded`` against the teacher on ``clean``."""
    with torch.no_grad():
        t = flatten_levels(teacher.head_levels(clean))
        t_obj = t[..., 4].sigmoid()
        t_cls = t[..., 5:].sigmoid()
        t_box = t[..., :4]
    s = flatten_levels(student.head_levels(coded))
    w = t_obj
    norm = w.sum().clamp(min=1.0)
    obj = F.binary_cross_entropy_with_logits(s[..., 4], t_obj, reduction="sum") / norm
    cls = (F.binary_cross_entropy_with_logits(s[..., 5:], t_cls, reduction="none").sum(-1) * w).sum() / norm
    box = ((s[..., :4] - t_box).abs().sum(-1) * w).sum() / norm
    with torch.no_grad():  # the targets' own entropy: what the BCE terms cannot go below
        def ent(p: torch.Tensor) -> torch.Tensor:
            p = p.clamp(1e-6, 1 - 1e-6)
            return -(p * p.log() + (1 - p) * (1 - p).log())
        floor = ent(t_obj).sum() / norm + (ent(t_cls).sum(-1) * w).sum() / norm
    return {"obj": obj, "cls": cls, "box": box, "floor": floor}


def loss_of(terms: dict[str, torch.Tensor], box_weight: float) -> torch.Tensor:
    return terms["obj"] + terms["cls"] + box_weight * terms["box"]


def random_crop(coded: torch.Tensor, clean: torch.Tensor, rng: random.Random, max_h: int, max_w: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    _, h, w = coded.shape
    ch, cw = min(h, max_h) // 4 * 4, min(w, max_w) // 4 * 4
    y0 = 4 * rng.randrange((h - ch) // 4 + 1)
    x0 = 4 * rng.randrange((w - cw) // 4 + 1)
    sl = (slice(None), slice(y0, y0 + ch), slice(x0, x0 + cw))
    return coded[sl].float().unsqueeze(0), clean[sl].float().unsqueeze(0)


def validate(student: YOLOX, teacher: YOLOX, val: dict, box_weight: float) -> dict[str, float]:
    """Mean distillation loss (less the targets' entropy) per quality on the held-out frames."""
    out: dict[str, float] = {}
    with torch.no_grad():
        for q in VAL_QUALITIES:
            vals = []
            for item in val.values():
                for coded, clean in zip(item["coded"][q], item["clean"], strict=True):
                    t = distill_terms(student, teacher, coded.float()[None], clean.float()[None])
                    vals.append(float(loss_of(t, box_weight) - t["floor"]))
            out[str(q)] = round(float(np.mean(vals)), 4)
    return out


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "train_backend",
                    help="cache/checkpoint folder")
    ap.add_argument("--base-model", default=default_base_model(), help="shipped base model id or .json path")
    ap.add_argument("--teacher", type=Path, default=TEACHER_ONNX, help="the clean YOLOX-Nano weights (.onnx)")
    ap.add_argument("--steps", type=int, default=4000, help="maximum optimisation steps")
    ap.add_argument("--minutes", type=float, default=20.0, help="training time budget (the cache excluded)")
    ap.add_argument("--batch", type=int, default=4, help="samples per step (gradients accumulated)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--box-weight", type=float, default=2.0)
    ap.add_argument("--crop", type=int, nargs=2, default=(32, 48), metavar=("H", "W"),
                    help="largest crop in feature cells (stride 8)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-only", action="store_true", help="build the feature cache and stop")
    ap.add_argument("--ship", action="store_true", help="write vcodec/weights/backend-<base model>.pt/.json")
    ap.add_argument("--init", default=None,
                    help="start from the back end adapted to this shipped base model id (its "
                         "backend-<id>.json in vcodec/weights) instead of the clean back end; for a base "
                         "model whose transforms are those of the named one")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    from vcodec.baselayer.learned import BaseCodec

    codec = BaseCodec.from_weights(args.base_model)
    if codec.detector != "yolox-nano":
        raise SystemExit(f"base model {codec.model_id} serves {codec.detector}; "
                         "this script adapts YOLOX-Nano")
    teacher = build_yolox("nano", args.teacher).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    segments = training_segments()
    log(args.out, f"base model {codec.model_id} ({codec.sha256[:12]}), teacher {args.teacher.name}; "
                  f"{len(segments)} segments, "
                  f"{sum(s.length * len(s.qualities) for s in segments)} coded frames")
    build_cache(args.out, codec, teacher, segments)
    if args.cache_only:
        return 0
    samples, val = load_cache(args.out, segments)
    log(args.out, f"{len(samples)} training samples; held-out: "
                  + ", ".join(f"{n} {len(v['frames'])} frames" for n, v in val.items()))

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    student = copy.deepcopy(teacher)
    if args.init is not None:
        init = init_backend(args.init, args.teacher)
        student.load_state_dict({**student.state_dict(), **init.state_dict()})
        log(args.out, f"student initialised from {init.name} ({init.sha256[:12]})")
    for k, p in student.named_parameters():
        p.requires_grad_(not k.startswith(FRONT_PREFIXES))
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ckpt = args.out / "last.pt"
    state: dict[str, Any] = {"step": 0, "elapsed": 0.0, "history": [], "val": {}}
    if ckpt.exists():
        blob = torch.load(ckpt, weights_only=False)
        student.load_state_dict(blob["student"])
        opt.load_state_dict(blob["opt"])
        rng.setstate(blob["rng"])
        state = blob["state"]
        log(args.out, f"resumed at step {state['step']} ({state['elapsed'] / 60:.1f} min trained)")
    else:
        state["val"]["plain"] = validate(teacher, teacher, val, args.box_weight)
        log(args.out, f"held-out excess loss, plain back end: {state['val']['plain']}")
        if args.init is not None:
            state["val"]["init"] = validate(student, teacher, val, args.box_weight)
            log(args.out, f"held-out excess loss, {args.init}'s back end as is: {state['val']['init']}")

    budget = args.minutes * 60
    t_start = time.perf_counter() - state["elapsed"]
    window: list[dict[str, float]] = []
    while state["step"] < args.steps and state["elapsed"] < budget:
        progress = max(state["step"] / args.steps, state["elapsed"] / budget)
        lr = args.lr * min(1.0, (state["step"] + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        acc = {"obj": 0.0, "cls": 0.0, "box": 0.0, "floor": 0.0}
        for _ in range(args.batch):
            coded, clean = random_crop(*samples[rng.randrange(len(samples))], rng, *args.crop)
            terms = distill_terms(student, teacher, coded, clean)
            (loss_of(terms, args.box_weight) / args.batch).backward()
            for k in acc:
                acc[k] += float(terms[k]) / args.batch
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        state["step"] += 1
        state["elapsed"] = time.perf_counter() - t_start
        window.append(acc)
        if state["step"] % args.ckpt_every == 0 or state["step"] >= args.steps or state["elapsed"] >= budget:
            mean = {k: round(float(np.mean([w[k] for w in window])), 4) for k in acc}
            total = mean["obj"] + mean["cls"] + args.box_weight * mean["box"]
            mean["excess"] = round(total - mean["floor"], 4)
            state["history"].append({"step": state["step"], "minutes": round(state["elapsed"] / 60, 2),
                                     "lr": lr, **mean})
            window = []
            log(args.out, f"step {state['step']} ({state['elapsed'] / 60:.1f} min) lr {lr:.2e} {mean}")
            if state["step"] % args.val_every == 0:
                v = validate(student, teacher, val, args.box_weight)
                state["val"][f"step{state['step']}"] = v
                log(args.out, f"held-out excess loss at step {state['step']}: {v}")
            torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(),
                        "state": state}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").rename(ckpt)
    state["val"]["adapted"] = validate(student, teacher, val, args.box_weight)
    log(args.out, f"held-out excess loss, adapted back end: {state['val']['adapted']} "
                  f"(plain: {state['val'].get('plain')})")
    if args.ship:
        ship(args, codec, student, segments, val, state, len(samples))
    return 0


def init_backend(base_model_id: str, teacher: Path) -> Any:
    """The adapted back end shipped for ``base_model_id``, checked against the teacher's weights."""
    from vcodec.detection.backends import AdaptedBackend, backend_name

    js = WEIGHTS_DIR / f"{backend_name(base_model_id)}.json"
    if not js.is_file():
        raise SystemExit(f"--init {base_model_id}: {js} does not exist; name a base model with an adapted "
                         f"back end")
    init = AdaptedBackend.from_json(js)
    if init.detector_weights_sha256 != sha256_of(teacher):
        raise SystemExit(f"--init {base_model_id}: {init.name} was made from other YOLOX-Nano weights than "
                         f"{teacher}")
    return init


def held_out_description(name: str, frames: list[int]) -> str:
    """Absolute frame numbers of bench_base's hold-out (it numbers raw/.264 clips from the tail's start)."""
    if not name.endswith(".mp4"):
        from train_base import read_clip, split_clip

        n_train = len(split_clip(read_clip(CLIPS / name, max_long_side=64, step=1))[0])
        frames = [n_train + i for i in frames]
    return f"frames {frames[0]}-{frames[-1]} (tools/bench_base.py held_out: the last 20%, at most 30 frames)"


def ship(args: argparse.Namespace, codec: Any, student: YOLOX, segments: list[Segment], val: dict,
         state: dict[str, Any], n_samples: int) -> None:
    from vcodec.detection.backends import BACKEND_FORMAT, backend_name

    name = backend_name(codec.model_id)
    pt = WEIGHTS_DIR / f"{name}.pt"
    torch.save({"format": BACKEND_FORMAT, "version": 1, "detector": "yolox-nano",
                "state_dict": back_state(student)}, pt)
    record = {
        "name": name, "kind": "adapted-backend", "detector": "yolox-nano",
        "base_model": codec.model_id, "base_sha256": codec.sha256,
        "detector_weights_sha256": sha256_of(args.teacher),
        "sha256": sha256_of(pt), "weights_file": pt.name,
        "parts": "dark4, dark5, PAFPN neck, head (BatchNorm folded); the front end is the clean detector's",
        "training": {
            "script": "tools/train_backend.py", "seed": args.seed, "torch_threads": args.threads,
            "init": (f"{backend_name(args.init)} (sha256 {init_backend(args.init, args.teacher).sha256})"
                     if args.init else "the clean YOLOX-Nano back end"),
            "device": f"cpu, {args.threads} torch thread(s) (this script trains on the CPU only)",
            "steps": state["step"], "minutes": round(state["elapsed"] / 60, 1), "batch": args.batch,
            "lr": args.lr, "warmup": args.warmup, "box_weight": args.box_weight,
            "crop_cells": list(args.crop),
            "loss": "BCE(obj, teacher obj prob) on every anchor + teacher-obj-weighted [BCE(80 classes, "
                    "teacher probs) + box_weight * L1(raw box, teacher raw box)], / max(1, sum teacher obj); "
                    "teacher = "
                    "the clean back end on F(x) of the same frame and crop",
            "coding": "each segment coded as one sequence by the base model's encoder (intra period 32, "
                      f"default CodingTools {CodingTools().to_dict()}: P-frames with skip blocks, hyperprior "
                      "reuse and, from payload version 3, motion-compensated prediction), T(y_hat) cached as "
                      "float16",
            "qualities": QUALITIES,
            "train_segments": [f"{s.clip} frames {s.start}-{s.start + s.length - 1} at q {list(s.qualities)}"
                               for s in segments],
            "train_samples": n_samples,
            "held_out": {n: held_out_description(n, v["frames"]) for n, v in val.items()},
            "val_excess_loss_by_quality": state["val"],
            "history": state["history"],
        },
    }
    (WEIGHTS_DIR / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    log(args.out, f"shipped {pt} ({record['sha256'][:12]})")


if __name__ == "__main__":
    raise SystemExit(main())
