#!/usr/bin/env python
"""Train ``vcodec-det`` by distilling YOLOX-Nano on frames of the shared real clips (CPU).

What it does (see docs/DETECTION.md):

1. Reads every clip in ``--clips`` (every ``--person-step``-th frame of long
   clips), letterboxes each frame at every long side in ``--scales`` and runs
   the teacher once: its stride-8 features (``dark3``, which *are* vcodec-det's
   split features, the front being shared and frozen) and its dense outputs
   (box regression, objectness, probabilities of the 6 classes) are cached
   in ``OUT/cache.pt``.  The last ``--holdout`` fraction of each clip is
   never trained on.
2. Trains the back end on the cached features with dense output distillation
   (objectness and class BCE against the teacher's probabilities, L1 on the
   raw box regression weighted by the teacher's objectness) and random
   feature noise (so that the back end tolerates the base layer's
   approximation of the features).  Seeded, one thread, checkpoint every
   ``--ckpt-every`` steps to ``OUT/last.pt``; rerunning the same command
   resumes.  Per-epoch mean losses go to ``OUT/train.log``.
3. Measures mAP@0.5 against YOLOX-Nano's detections (score >= 0.3) on the
   held-out frames with pycocotools and, with ``--ship``, writes
   ``vcodec/weights/vcodec-det.pt`` and its record ``vcodec-det.json``.

Run in the background::

    nohup python tools/train_det.py --out runs/train_det --ship > runs/train_det.out 2>&1 &
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.detection.base import Detections, letterbox_geometry
from vcodec.detection.clips import list_clips, load_clip, shared_dir, split_holdout
from vcodec.detection.evaluate import map_against
from vcodec.detection.vcodec_det import SHIPPED_RECORD, SHIPPED_WEIGHTS, VCODEC_DET_CLASSES, VcodecDet
from vcodec.detection.weights import sha256_of
from vcodec.detection.yolox import build_yolox

REPO = Path(__file__).resolve().parents[1]


def log(out: Path, msg: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    with open(out / "train.log", "a") as f:
        f.write(line + "\n")


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def letterbox_hw(w: int, h: int, long_side: int) -> tuple[int, int]:
    """Rectangular letterbox target: long side ``long_side``, short side rounded up to 32."""
    r = long_side / max(w, h)
    th = int(math.ceil(h * r / 32) * 32)
    tw = int(math.ceil(w * r / 32) * 32)
    return th, tw


def build_cache(args: argparse.Namespace, teacher, out: Path) -> dict:
    groups = []
    clips = list_clips(args.clips)
    if not clips:
        sys.exit(f"no clips found in {args.clips}")
    data_record = []
    for path in clips:
        probe = load_clip(path, 1, 1)
        h0, w0 = probe.pictures[0].shape[:2]
        # long clips (hundreds of frames of one scene) are subsampled in time
        step = args.person_step if path.stat().st_size > 0 and _num_frames(path) > 300 else 1
        clip = load_clip(path, step)
        n = len(clip.pictures)
        train_r, hold_r = split_holdout(n, args.holdout)
        data_record.append({
            "clip": path.name, "size": [w0, h0], "frame_step": step, "frames_used": n,
            "train_frames": len(train_r), "holdout_frames": len(hold_r),
            "holdout_first_index": clip.indices[hold_r.start] if len(hold_r) else None,
        })
        for long_side in args.scales:
            th, tw = letterbox_hw(w0, h0, long_side)
            feats, targets, is_hold = [], [], []
            for k, bgr in enumerate(clip.pictures):
                x, _ = teacher.prepare(bgr, "letterbox", (th, tw))
                with torch.no_grad():
                    f = teacher.front(x)
                    raw = teacher.raw_outputs(f)[0]
                t = torch.cat([raw[:, :5], raw[:, 5:][:, VCODEC_DET_CLASSES]], 1)
                feats.append(f[0].half())
                targets.append(t.half())
                is_hold.append(k in hold_r)
            groups.append({
                "clip": path.name, "long_side": long_side, "hw": (th, tw), "orig": (w0, h0),
                "feats": torch.stack(feats), "targets": torch.stack(targets),
                "holdout": torch.tensor(is_hold), "indices": clip.indices,
            })
            log(out, f"cached {path.name} at {tw}x{th}: {n} frames ({len(hold_r)} held out)")
    return {"groups": groups, "data": data_record}


def _num_frames(path: Path) -> int:
    if path.suffix.lower() in {".yuv", ".i420"}:
        return 0
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return int(s.frames or 0) or sum(1 for _ in c.demux(s) if _.size)


def distill_loss(student_levels: list[torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dense distillation losses; ``target`` is N x A x (4 + 1 + C) teacher outputs (probabilities)."""
    s = torch.cat([x.flatten(2) for x in student_levels], 2).permute(0, 2, 1)
    t = target.float()
    t_obj = t[..., 4]
    norm = t_obj.sum().clamp(min=1.0)
    l_obj = F.binary_cross_entropy_with_logits(s[..., 4], t_obj, reduction="sum") / norm
    l_cls = (
        t_obj.unsqueeze(-1) * F.binary_cross_entropy_with_logits(s[..., 5:], t[..., 5:], reduction="none")
    ).sum() / norm
    l_reg = (t_obj * (s[..., :4] - t[..., :4]).abs().sum(-1)).sum() / norm
    return {"obj": l_obj, "cls": l_cls, "reg": l_reg, "total": l_obj + l_cls + 2.0 * l_reg}


def evaluate(
    model: VcodecDet, teacher, cache: dict, long_side: int, holdout: bool = True
) -> dict[str, float]:
    """mAP@0.5 of the student against the teacher (score >= 0.3) on cached features."""
    refs, preds = [], []
    model.eval()
    saved = model.score_threshold
    model.score_threshold = 0.01
    for g in cache["groups"]:
        if g["long_side"] != long_side:
            continue
        sel = g["holdout"] if holdout else ~g["holdout"]
        idx = torch.nonzero(sel).flatten().tolist()
        if not holdout:
            idx = idx[:: max(1, len(idx) // 40)]
        th, tw = g["hw"]
        w0, h0 = g["orig"]
        geom = letterbox_geometry(w0, h0, (th, tw))
        for i in idx:
            f = g["feats"][i : i + 1].float()
            with torch.no_grad():
                refs.append(teacher.back(f, geom)[0])
                preds.append(model.back(f, geom)[0])
    model.score_threshold = saved
    res = map_against(refs, preds, VCODEC_DET_CLASSES, reference_min_score=0.3)
    res["frames"] = len(refs)
    return res


def _match_counts(ref: Detections, pred: Detections, iou_min: float = 0.5) -> tuple[int, int, int]:
    """(true positives, false positives, misses) of greedy same-class IoU matching."""
    used: set[int] = set()
    tp = 0
    for k in np.argsort(-pred.scores):
        best, best_iou = -1, iou_min
        for j in range(len(ref)):
            if j in used or ref.class_ids[j] != pred.class_ids[k]:
                continue
            a, b = pred.boxes[k], ref.boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union >= best_iou:
                best, best_iou = j, inter / union
        if best >= 0:
            used.add(best)
            tp += 1
    return tp, len(pred) - tp, len(ref) - tp


def calibrate_score_power(model: VcodecDet, teacher, cache: dict, target: float = 0.3) -> dict[str, float]:
    """Fit ``score_power`` so that the F1-best raw threshold (on TRAINING frames, against the
    teacher at ``target``) maps to ``target``; held-out frames are not used."""
    pairs = []
    saved = model.score_threshold, model.score_power
    model.score_threshold, model.score_power = 0.005, 1.0
    for g in cache["groups"]:
        if g["long_side"] != 416:
            continue
        for i in torch.nonzero(~g["holdout"]).flatten().tolist()[::4]:
            f = g["feats"][i : i + 1].float()
            pairs.append((teacher.back(f)[0].filter(target, VCODEC_DET_CLASSES), model.back(f)[0]))
    model.score_threshold, model.score_power = saved
    best_t, best_f1 = target, -1.0
    for t in [0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3]:
        tp = fp = fn = 0
        for ref, pred in pairs:
            a, b, c = _match_counts(ref, pred.filter(t))
            tp, fp, fn = tp + a, fp + b, fn + c
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        if f1 > best_f1:
            best_t, best_f1 = t, f1
    power = math.log(target) / math.log(best_t)
    return {"score_power": round(power, 4), "raw_threshold": best_t, "train_f1": round(best_f1, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "train_det")
    ap.add_argument(
        "--teacher", type=Path, default=shared_dir() / "models" / "yolox_nano" / "yolox_nano.onnx"
    )
    ap.add_argument("--clips", type=Path, default=shared_dir() / "data" / "clips")
    ap.add_argument("--scales", type=int, nargs="+", default=[416, 320])
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument(
        "--person-step", type=int, default=2, help="temporal subsampling of clips over 300 frames"
    )
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--noise", type=float, default=0.3, help="max feature noise (x channel std)")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--eval-every-epochs", type=int, default=5)
    ap.add_argument("--minutes", type=float, default=55.0, help="stop (resumable) after this wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--ship", action="store_true", help="write vcodec/weights/vcodec-det.{pt,json} at the end"
    )
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    teacher = build_yolox("nano", args.teacher)
    teacher.eval()

    cache_path = out / "cache.pt"
    if cache_path.is_file():
        cache = torch.load(cache_path, weights_only=False)
        log(out, f"loaded cache {cache_path}")
    else:
        cache = build_cache(args, teacher, out)
        torch.save(cache, cache_path)
        log(out, f"cache built in {time.time() - t_start:.0f}s")

    model = VcodecDet()
    bb = teacher.backbone.backbone
    for name in ("stem", "dark2", "dark3"):
        getattr(model, name).load_state_dict(getattr(bb, name).state_dict())
    for p in model.front_modules().parameters():
        p.requires_grad_(False)
    params = [p for p in model.back_modules().parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)

    def lr_at(step: int) -> float:  # short warm-up then cosine decay
        warm = 100
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, args.steps - warm)))

    train_groups = [g for g in cache["groups"]]
    train_idx = [torch.nonzero(~g["holdout"]).flatten().tolist() for g in train_groups]
    weights = np.array([math.sqrt(len(ix)) for ix in train_idx], dtype=float)
    weights /= weights.sum()
    total_train = sum(len(ix) for ix in train_idx)
    steps_per_epoch = max(1, total_train // args.batch)
    # per-channel spread of the split features, for noise relative to each channel
    all_feats = torch.cat([g["feats"][:16].float().transpose(0, 1).reshape(64, -1) for g in train_groups], 1)
    ch_std = all_feats.std(1).view(1, 64, 1, 1)

    ckpt = out / "last.pt"
    step = 0
    history: list[dict] = []
    if ckpt.is_file():
        st = torch.load(ckpt, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        history = st["history"]
        random.setstate(st["py_rng"])
        np.random.set_state(st["np_rng"])
        torch.set_rng_state(st["torch_rng"])
        log(out, f"resumed at step {step}")
    rng = np.random.default_rng(args.seed + step)

    def save_ckpt() -> None:
        torch.save({
            "model": model.state_dict(), "opt": opt.state_dict(), "step": step, "history": history,
            "py_rng": random.getstate(), "np_rng": np.random.get_state(), "torch_rng": torch.get_rng_state(),
        }, ckpt)

    log(out, f"training: {total_train} frames x scales, {steps_per_epoch} steps/epoch, {args.steps} steps")
    model.train()
    model.front_modules().eval()
    sums: dict[str, float] = {}
    count = 0
    while step < args.steps:
        if (time.time() - t_start) / 60 > args.minutes:
            save_ckpt()
            log(out, f"time budget reached at step {step}; rerun the same command to resume")
            return 0
        gi = int(rng.choice(len(train_groups), p=weights))
        g = train_groups[gi]
        pick = rng.choice(train_idx[gi], size=min(args.batch, len(train_idx[gi])), replace=False)
        f = g["feats"][torch.as_tensor(pick)].float()
        if rng.random() < 0.5:
            sigma = float(rng.uniform(0, args.noise))
            f = f + sigma * ch_std * torch.randn_like(f)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        losses = distill_loss(model.head_levels(f), g["targets"][torch.as_tensor(pick)])
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        step += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        if step % args.ckpt_every == 0:
            save_ckpt()
        if step % steps_per_epoch == 0 or step == args.steps:
            epoch = step / steps_per_epoch
            rec = {
                "epoch": round(epoch, 2),
                "step": step,
                **{k: round(v / count, 5) for k, v in sums.items()},
            }
            if int(round(epoch)) % args.eval_every_epochs == 0 or step == args.steps:
                model.eval()
                rec["holdout_map50"] = round(evaluate(model, teacher, cache, 416)["map50"], 4)
                model.train()
                model.front_modules().eval()
            history.append(rec)
            log(out, json.dumps(rec))
            sums, count = {}, 0
    save_ckpt()

    model.eval()
    final_hold = evaluate(model, teacher, cache, 416, holdout=True)
    final_train = evaluate(model, teacher, cache, 416, holdout=False)
    log(out, f"final held-out {final_hold}; train subset {final_train}")
    calib = calibrate_score_power(model, teacher, cache)
    log(out, f"score calibration {calib}")
    if args.ship:
        ship(model, args, cache, history, final_hold, final_train, time.time() - t_start, calib)
    return 0


def ship(
    model: VcodecDet, args, cache: dict, history: list[dict], hold: dict, train: dict, seconds: float,
    calib: dict[str, float],
) -> None:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    SHIPPED_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, SHIPPED_WEIGHTS)
    # parameters as shipped for inference (BatchNorm folded) and as trained
    counts = copy.deepcopy(model).fuse().num_parameters()
    counts_training = model.num_parameters()
    record = {
        "name": "vcodec-det",
        "format": "PyTorch state dict of vcodec.detection.vcodec_det.VcodecDet (front BatchNorm-folded)",
        "sha256": sha256_of(SHIPPED_WEIGHTS),
        "size_bytes": SHIPPED_WEIGHTS.stat().st_size,
        "classes": VCODEC_DET_CLASSES,
        "class_names": [["person", "bicycle", "car", "motorcycle", "bus", "truck"][i] for i in range(6)],
        "class_id_space": "COCO80 contiguous ids (0 = person ... 79 = toothbrush)",
        "config": {"width": 64, "split_stride": 8, "split_channels": 64, "strides": [8, 16, 32],
                   "score_power": calib["score_power"]},
        "score_calibration": {
            **calib,
            "method": "reported score = raw score ** score_power; the raw threshold with the best F1 "
                      "against YOLOX-Nano (score >= 0.3) on training frames maps to 0.3; ranking unchanged",
        },
        "parameters": counts,
        "parameters_training": counts_training,
        "input_format": model.input_format,
        "front": "YOLOX-Nano stem/dark2/dark3 (Megvii, Apache-2.0), frozen: "
                 "split features equal YOLOX-Nano's dark3",
        "training": {
            "method": "dense output distillation from YOLOX-Nano "
                      "(objectness/class BCE to teacher probabilities, "
                      "L1 on raw box regression weighted by teacher objectness) on cached split features, "
                      f"random Gaussian feature noise (p=0.5, sigma up to {args.noise:.2f} x channel std)",
            "teacher": {"file": Path(args.teacher).name, "sha256": sha256_of(args.teacher)},
            "data": cache["data"],
            "letterbox_long_sides": args.scales,
            "holdout": f"last {args.holdout:.0%} of each clip, never trained on",
            "steps": args.steps,
            "epochs": round(
                args.steps / max(1, sum(int((~g['holdout']).sum()) for g in cache['groups']) // args.batch), 2
            ),
            "batch": args.batch,
            "optimizer": f"AdamW lr {args.lr} cosine, weight decay 1e-4",
            "seed": args.seed,
            "threads": args.threads,
            "wall_seconds_last_run": round(seconds),
            "final_losses": {k: v for k, v in history[-1].items() if k in ("obj", "cls", "reg", "total")}
            if history else {},
            "history": history,
        },
        "evaluation": {
            "metric": "COCO mAP@0.5 (pycocotools) against YOLOX-Nano detections with score >= 0.3 "
                      "as reference; "
                      "vcodec-det detections with score >= 0.01; 6 classes; letterbox long side 416",
            "holdout_map50": round(hold["map50"], 4),
            "holdout_map50_95": round(hold["map"], 4),
            "holdout_frames": hold["frames"],
            "holdout_reference_objects": hold["num_ref"],
            "train_subset_map50": round(train["map50"], 4),
        },
    }
    SHIPPED_RECORD.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {SHIPPED_WEIGHTS} ({record['size_bytes']} bytes) and {SHIPPED_RECORD}")


if __name__ == "__main__":
    sys.exit(main())
