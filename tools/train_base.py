#!/usr/bin/env python
"""Train the learned base layer (layer 0) on the real clips, on CPU.

Two stages, as in variable-rate post-training (Kamisli et al., DCC 2024):

1. single rate: the model is trained at the reference gain 1.0 (quality level
   ``ref_level``) with loss ``R + lam * (lam_f * Df + lam_x * Dx)``;
2. variable-rate post-training: every step draws one quality level l, the
   latent is quantised with step 1/gain_l, the learned reconstruction offsets
   and the variable-rate hyperlatent are used, and the distortion weight is
   scaled by the square of level l's initial gain (the rate-distortion slope of a uniform quantiser of
   step 1/gain scales with 1/step**2), so one model covers all levels.

R is bits per pixel of y and z; Df the MSE between T(y_hat) and the detector's
own split features F(x), divided by the mean variance of F(x) over the first
batches (so lam_f does not depend on the detector's feature scale); Dx the MSE
of g_s(y_hat) against x in [0, 1]; with ``--lam-t`` the loss adds
``lam_t * Dtask``: the frozen detector back end's dense outputs on T(y_hat)
distilled toward its outputs on F(x) (see ``FrontEnd.task_loss``).

Data: every clip in ../shared/data/clips (HD clips downscaled so the long side
is <= 832, like the codec does); the last 20% of each clip's frames are held
out for validation.  Training samples are frame triples (I, P, P) with random
crops and horizontal flips.  One torch thread; seeded; resumable from the
checkpoint in --workdir; one log line per epoch.

    nohup python tools/train_base.py --detector yolox-nano --workdir runs/base-yolox \\
        --minutes 50 > runs/base-yolox.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vcodec.io.frame import Frame  # noqa: E402
from vcodec.models.base_codec import PAD_VALUE, save_base_weights  # noqa: E402
from vcodec.models.base_net import BaseNet, BaseNetConfig, bits_of  # noqa: E402

SHARED = REPO.parent / "shared"
CLIPS = SHARED / "data" / "clips"


# -- data --------------------------------------------------------------------------
def _fit(rgb: np.ndarray, max_long_side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) <= max_long_side:
        return rgb
    s = max_long_side / max(h, w)
    return cv2.resize(rgb, (int(round(w * s / 2)) * 2, int(round(h * s / 2)) * 2), interpolation=cv2.INTER_AREA)


def read_clip(path: Path, max_long_side: int = 832, step: int = 1, limit: int | None = None) -> list[np.ndarray]:
    """RGB uint8 frames of one clip (raw I420 or anything PyAV decodes)."""
    frames: list[np.ndarray] = []
    name = path.name
    if path.suffix in (".yuv", ".i420"):
        import re

        m = re.search(r"(\d+)x(\d+)", name)
        if not m:
            raise SystemExit(f"{path}: cannot find WxH in the name")
        w, h = int(m.group(1)), int(m.group(2))
        data = path.read_bytes()
        size = w * h * 3 // 2
        for i in range(0, len(data) // size, step):
            frames.append(_fit(Frame.from_bytes(data[i * size:(i + 1) * size], w, h).to_rgb(), max_long_side))
            if limit and len(frames) >= limit:
                break
        return frames
    import av

    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                frames.append(_fit(f.to_ndarray(format="rgb24"), max_long_side))
            if limit and len(frames) >= limit:
                break
    return frames


def clip_list() -> list[tuple[Path, int, int | None]]:
    """(path, frame step, frame limit) of the training clips; long clips are subsampled."""
    return [
        (CLIPS / "cars_320x240.i420", 1, None),
        (CLIPS / "CiscoVT2people_320x192_12fps.yuv", 1, None),
        (CLIPS / "VID_1920x1080_cabac_temporal_direct.264", 1, None),
        (CLIPS / "Zhling_1280x720.264", 1, None),
        (CLIPS / "one-by-one-person-detection.mp4", 3, 300),
    ]


def split_clip(frames: list[np.ndarray], holdout: float = 0.2) -> tuple[list[np.ndarray], list[np.ndarray]]:
    n_val = max(3, int(math.ceil(len(frames) * holdout)))
    return frames[:-n_val], frames[-n_val:]


def load_data(max_long_side: int) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]], list[str]]:
    train, val, names = [], [], []
    for path, step, limit in clip_list():
        if not path.exists():
            continue
        fr = read_clip(path, max_long_side, step, limit)
        tr, va = split_clip(fr)
        train.append(tr)
        val.append(va)
        names.append(f"{path.name} (step {step}, {len(fr)} frames: {len(tr)} train, {len(va)} val)")
    if not train:
        raise SystemExit(f"no clips found in {CLIPS}")
    return train, val, names


def sample_batch(clips: list[list[np.ndarray]], rng: random.Random, batch: int, crop: int,
                 length: int = 3) -> torch.Tensor:
    """B x T x 3 x crop x crop float RGB in [0, 1]; a clip is drawn uniformly, then a window."""
    out = np.empty((batch, length, crop, crop, 3), dtype=np.uint8)
    for b in range(batch):
        clip = clips[rng.randrange(len(clips))]
        gap = rng.choice([1, 1, 2])
        t0 = rng.randrange(max(1, len(clip) - gap * (length - 1)))
        h, w = clip[0].shape[:2]
        y0 = rng.randrange(max(1, h - crop + 1))
        x0 = rng.randrange(max(1, w - crop + 1))
        flip = rng.random() < 0.5
        for t in range(length):
            img = clip[min(t0 + t * gap, len(clip) - 1)]
            patch = np.full((crop, crop, 3), PAD_VALUE, dtype=np.uint8)
            p = img[y0:y0 + crop, x0:x0 + crop]
            patch[: p.shape[0], : p.shape[1]] = p
            out[b, t] = patch[:, ::-1] if flip else patch
    return torch.from_numpy(out).permute(0, 1, 4, 2, 3).float().div_(255.0)


def load_detector(name: str) -> Any:
    """The split detector by name, with real weights (YOLOX-Nano from ../shared/models)."""
    onnx = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
    if name == "yolox-nano" and not onnx.is_file():
        raise SystemExit(f"YOLOX-Nano weights {onnx} are missing; the base layer must be trained "
                         f"against the real front end")
    try:
        from vcodec.detection import get_detector
    except ImportError:  # older checkout without the detector registry
        if name != "yolox-nano":
            raise
        from vcodec.detection.yolox import YOLOX

        return YOLOX("nano").load(onnx)
    # get_detector() without weights would give a randomly initialised YOLOX
    return get_detector(name, weights=onnx if name == "yolox-nano" else None)


# -- detector front ends -------------------------------------------------------------
class FrontEnd:
    """F(x) for RGB [0, 1] tensors, through the detector's own prepare/front."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "standin":
            # plumbing only: a random conv net with the split shape (never shipped)
            g = torch.Generator().manual_seed(0)
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.SiLU(), torch.nn.Conv2d(16, 32, 3, 2, 1),
                torch.nn.SiLU(), torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.SiLU())
            for p in self.net.parameters():
                p.data = torch.randn(p.shape, generator=g) * 0.2
            self.det = None
            self.split_channels, self.split_stride = 64, 8
        else:
            self.det = load_detector(name).eval()
            self.split_channels = int(self.det.split_channels)
            self.split_stride = int(self.det.split_stride)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.det is None:
                return self.net(x)
            rgb = x.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            ts = [self.det.prepare(np.ascontiguousarray(im[..., ::-1]), mode="pad", multiple=64)[0]
                  for im in rgb]
            return self.det.front(torch.cat(ts, 0))


    @property
    def has_head(self) -> bool:
        return self.det is not None and hasattr(self.det, "head_levels")

    def task_loss(self, f_hat: torch.Tensor, f_true: torch.Tensor) -> torch.Tensor:
        """Distillation through the frozen back end: its dense outputs on T(y_hat) vs on F(x).

        Feature MSE treats every channel and position alike, yet a 10 % relative MSE
        already erases people the detector finds on F(x); this term weighs the errors
        by what the detector's head makes of them (objectness and class BCE against the
        head's own probabilities on F(x), less their entropy, so 0 at T(y_hat) = F(x);
        L1 on box regression), each anchor weighted by the reference objectness and
        normalised by its sum, as tools/train_det.py distils vcodec-det.
        """
        from vcodec.detection.yolox import flatten_levels

        s = flatten_levels(self.det.head_levels(f_hat))
        with torch.no_grad():
            t = flatten_levels(self.det.head_levels(f_true))
            t_obj = t[..., 4].sigmoid()
            t_cls = t[..., 5:].sigmoid()
            # the entropy of the soft targets: subtracted so that Dtask is 0 for T(y_hat) = F(x)
            h_obj = F.binary_cross_entropy_with_logits(t[..., 4], t_obj, reduction="sum")
            h_cls = (t_obj.unsqueeze(-1) * F.binary_cross_entropy_with_logits(t[..., 5:], t_cls, reduction="none")).sum()
        norm = t_obj.sum().clamp_min(1.0)
        l_obj = (F.binary_cross_entropy_with_logits(s[..., 4], t_obj, reduction="sum") - h_obj) / norm
        l_cls = ((t_obj.unsqueeze(-1) * F.binary_cross_entropy_with_logits(s[..., 5:], t_cls, reduction="none")
                  ).sum() - h_cls) / norm
        l_box = (t_obj.unsqueeze(-1) * (s[..., :4] - t[..., :4]).abs()).sum() / norm
        return l_obj + l_cls + l_box


# -- training ------------------------------------------------------------------------
def run_frames(net: BaseNet, front: FrontEnd, seq: torch.Tensor, gain: torch.Tensor, vr: bool,
               feat_norm: float, task: bool = False) -> dict[str, torch.Tensor]:
    """Code a B x T window (first frame I, rest P) and return rate and distortions."""
    b, t = seq.shape[:2]
    prev = None
    bits = torch.zeros(())
    df = torch.zeros(())
    dx = torch.zeros(())
    dt = torch.zeros(())
    bits_i = torch.zeros(())
    npx = b * seq.shape[-1] * seq.shape[-2]
    for k in range(t):
        x = seq[:, k]
        out = net.forward_frame(x, prev, gain, vr)
        fb = bits_of(out["y_lik"]) + bits_of(out["z_lik"])
        if k == 0:
            bits_i = fb.detach()
        bits = bits + fb
        target = front(x)
        f_hat = net.T(out["y_hat"])
        df = df + F.mse_loss(f_hat, target) / feat_norm
        if task:
            dt = dt + front.task_loss(f_hat, target)
        dx = dx + F.mse_loss(net.g_s(out["y_hat"]), x)
        prev = out["y_hat"].detach()
    return {"bpp": bits / (npx * t), "df": df / t, "dx": dx / t, "dt": dt / t,
            "bpp_i": bits_i / npx, "bpp_p": (bits.detach() - bits_i) / (npx * max(1, t - 1))}


def evaluate(net: BaseNet, front: FrontEnd, val: list[list[np.ndarray]], feat_norm: float,
             level: int, vr: bool, crop: int, task: bool = False) -> dict[str, float]:
    """Held-out figures on fixed windows (seeded) at one quality level."""
    rng = random.Random(1234)
    net.eval()
    acc: dict[str, float] = {}
    with torch.no_grad():
        gain = net.gain[level].abs()
        n = 0
        for _ in range(4):
            seq = sample_batch(val, rng, 2, crop)
            r = run_frames(net, front, seq, gain, vr, feat_norm, task)
            for k, v in r.items():
                acc[k] = acc.get(k, 0.0) + float(v)
            n += 1
    net.train()
    return {k: round(v / n, 5) for k, v in acc.items()}


def derive(detector: str, source_json: Path, out: Path) -> int:
    """Ship a trained base model for another detector whose split front end is the SAME function.

    ``vcodec-det`` keeps YOLOX-Nano's stem/dark2/dark3 frozen as its front end, so the
    base model trained against YOLOX-Nano's front is trained against vcodec-det's too.
    This checks that claim on held-out frames of every clip (features must agree to
    1e-5) before writing ``base-<detector>-vN`` (the source's version) with the same tensors.
    """
    from vcodec.models.base_codec import BaseCodec

    src = BaseCodec.from_weights(source_json)
    a, b = FrontEnd(src.cfg.detector), FrontEnd(detector)
    _, val, names = load_data(src.cfg.max_long_side)
    worst = 0.0
    for clip in val:
        x = sample_batch([clip], random.Random(3), 2, 256, length=1)[:, 0]
        worst = max(worst, float((a(x) - b(x)).abs().max()))
    if worst > 1e-5 or a.split_channels != b.split_channels or a.split_stride != b.split_stride:
        raise SystemExit(f"front ends of {src.cfg.detector} and {detector} differ (max |diff| {worst}); "
                         f"train a model for {detector} instead")
    net = src.net
    net.cfg = BaseNetConfig.from_dict(src.cfg.to_dict() | {"detector": detector})
    record = dict(src.record) | {
        "derived_from": f"{src.model_id} (sha256 {src.sha256})",
        "derivation": f"{detector}'s split front end equals {src.cfg.detector}'s (frozen copy); "
                      f"max |feature difference| on held-out crops {worst:.2e}",
        "detector": detector,
    }
    # the derived model keeps the source's version: base-yolox-nano-v2 -> base-vcodec-det-v2
    version = src.model_id.rsplit("-", 1)[-1]
    version = version if version[:1] == "v" and version[1:].isdigit() else "v1"
    pt = save_base_weights(net, f"base-{detector}-{version}", out, record)
    print(f"wrote {pt} (front ends agree: max |diff| {worst:.2e})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="yolox-nano", help="split detector (yolox-nano, vcodec-det, standin)")
    ap.add_argument("--workdir", type=Path, default=None, help="checkpoint and log folder (resumable)")
    ap.add_argument("--minutes", type=float, default=50.0, help="wall-clock budget of this run")
    ap.add_argument("--stage1-frac", type=float, default=0.6, help="share of steps for single-rate training")
    ap.add_argument("--steps", type=int, default=4000, help="total steps (stage 1 + stage 2)")
    ap.add_argument("--epoch-steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lam", type=float, default=1.0, help="distortion weight at gain 1.0")
    ap.add_argument("--lam-f", type=float, default=4.0, help="feature MSE weight (normalised)")
    ap.add_argument("--lam-x", type=float, default=10.0, help="pixel MSE weight")
    ap.add_argument("--lam-t", type=float, default=0.0,
                    help="weight of the task term: distillation through the detector's frozen back end "
                         "(0 = off; needs a detector with a YOLOX head)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "vcodec" / "weights", help="where weights are written")
    ap.add_argument("--model-id", default=None, help="default base-<detector>-v1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", type=Path, default=None,
                    help="start from another base model's .pt (tensors whose shape matches; e.g. the "
                         "YOLOX-Nano model when training for another detector)")
    ap.add_argument("--derive-from", type=Path, default=None,
                    help="instead of training: ship the model in this .json for --detector, after "
                         "checking that both detectors have the same split front end")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.derive_from is not None:
        return derive(args.detector, args.derive_from, args.out)

    if args.workdir is None:
        ap.error("--workdir is required for training")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()
    front = FrontEnd(args.detector)
    task = args.lam_t > 0
    if task and not front.has_head:
        raise SystemExit(f"--lam-t needs a detector with a YOLOX head; {args.detector} has none")
    if task:
        for p in front.det.parameters():
            p.requires_grad_(False)
    enc_front = args.detector if args.detector in ("yolox-nano", "vcodec-det") else ""
    cfg = BaseNetConfig(detector=args.detector, split_channels=front.split_channels,
                        split_stride=front.split_stride, encoder_front=enc_front)
    net = BaseNet(cfg)
    if net.front_enc is not None:  # frozen copy of the detector's own front end
        net.front_enc.load_state_dict(front.det.front_modules().state_dict())
    if args.init is not None:
        src = torch.load(args.init, map_location="cpu", weights_only=False)  # our own checkpoint
        src = src.get("state_dict", src.get("net", src))
        own = net.state_dict()
        if net.front_enc is not None:  # a pixel-only g_a initialises the pixel branch
            src = {("g_a_pix." + k[4:] if k.startswith("g_a.") else k): v for k, v in src.items()}
            src = {k: v for k, v in src.items() if not k.startswith("front_enc.")}
        take = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(take, strict=False)
        print(f"initialised {len(take)}/{len(own)} tensors from {args.init}", flush=True)
    ref_level = int(np.argmin([abs(g - 1.0) for g in cfg.gain_init]))
    main_params = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = torch.optim.Adam([net.entropy_bottleneck.quantiles], lr=1e-3)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = args.workdir / "checkpoint.pt"
    step, feat_norm, history, stage2_from = 0, 0.0, [], -1
    rng = random.Random(args.seed)
    if ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(st["net"], strict=False)
        opt.load_state_dict(st["opt"])
        aux_opt.load_state_dict(st["aux_opt"])
        step, feat_norm, history = st["step"], st["feat_norm"], st["history"]
        stage2_from = st.get("stage2_from", -1)
        rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        print(f"resumed from {ckpt} at step {step}", flush=True)

    train, val, names = load_data(cfg.max_long_side)
    print(f"data: {names}", flush=True)
    if feat_norm == 0.0:
        vs = [float(front(sample_batch(train, random.Random(7), 4, args.crop)[:, 0]).var()) for _ in range(4)]
        feat_norm = float(np.mean(vs))
        print(f"feature variance (normaliser): {feat_norm:.5f}", flush=True)

    stage1_steps = int(args.steps * args.stage1_frac)
    acc: dict[str, float] = {}
    n_acc = 0
    t_epoch = time.time()
    deadline = t_start + args.minutes * 60

    def save_ckpt() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                    "step": step, "feat_norm": feat_norm, "stage2_from": stage2_from, "history": history, "rng": rng.getstate(),
                    "torch_rng": torch.get_rng_state(), "args": vars(args) | {"workdir": str(args.workdir),
                                                                              "out": str(args.out)}}, tmp)
        tmp.replace(ckpt)

    net.train()
    while step < args.steps and time.time() < deadline:
        # stage 2 starts after its share of steps OR of the time budget, whichever comes first,
        # so that a run cut short by its budget still ends as a variable-rate model
        if stage2_from < 0 and (step >= stage1_steps
                                or time.time() - t_start >= args.stage1_frac * args.minutes * 60):
            stage2_from = step
        vr = stage2_from >= 0
        if vr and step == stage2_from:
            for g in opt.param_groups:  # post-training: smaller steps
                g["lr"] = args.lr * 0.5
        level = rng.randrange(net.levels) if vr else ref_level
        gain = net.gain[level].abs() if vr else net.gain[ref_level].detach().abs()
        # each level's distortion weight is fixed by its INITIAL gain: tied to the learned gain,
        # lowering a gain also lowered its own weight, and the lowest levels collapsed to the
        # gain floor (base-yolox-nano-v2's levels 0-1)
        lam = args.lam * float(cfg.gain_init[level]) ** 2
        seq = sample_batch(train, rng, args.batch, args.crop)
        r = run_frames(net, front, seq, gain, vr, feat_norm, task)
        loss = r["bpp"] + lam * (args.lam_f * r["df"] + args.lam_x * r["dx"] + args.lam_t * r["dt"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 5.0)
        opt.step()
        aux = net.aux_loss()
        aux_opt.zero_grad()
        aux.backward()
        aux_opt.step()
        with torch.no_grad():  # keep gains ordered and positive (lowest rate first)
            net.gain.data = torch.sort(net.gain.data.abs().clamp_min(0.05))[0]
        for k, v in r.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        acc["loss"] = acc.get("loss", 0.0) + float(loss)
        n_acc += 1
        step += 1
        if step % args.epoch_steps == 0 or step == args.steps or time.time() >= deadline:
            tr = {k: round(v / max(1, n_acc), 5) for k, v in acc.items()}
            ev = evaluate(net, front, val, feat_norm, ref_level, vr, args.crop, task)
            rec = {"step": step, "stage": 2 if vr else 1, "train": tr, "val_ref_level": ev,
                   "gains": [round(float(g), 4) for g in net.gain], "sec": round(time.time() - t_epoch, 1)}
            history.append(rec)
            print(json.dumps(rec), flush=True)
            acc, n_acc, t_epoch = {}, 0, time.time()
            save_ckpt()

    save_ckpt()
    # final validation at every level (stage 2 figures are what the shipped model does)
    vr_final = stage2_from >= 0 and step > stage2_from
    val_levels = {f"level{l}_gain{float(net.gain[l]):.3f}": evaluate(net, front, val, feat_norm, l, vr_final, args.crop, task)
                  for l in range(net.levels)} if vr_final else {}
    model_id = args.model_id or f"base-{args.detector}-v1"
    record: dict[str, Any] = {
        "data": names, "holdout": "last 20% of each clip's frames", "steps": step,
        "stage1_steps": stage2_from if stage2_from >= 0 else step, "batch": args.batch, "crop": args.crop,
        "loss": f"bpp + {args.lam}*gain^2*({args.lam_f}*Df/feat_var + {args.lam_x}*Dx"
                + (f" + {args.lam_t}*Dtask)" if task else ")"),
        "feat_var": feat_norm, "seed": args.seed, "detector": args.detector,
        "final_train": history[-1]["train"] if history else {}, "final_val_ref_level": history[-1]["val_ref_level"] if history else {},
        "val_levels": val_levels, "cpu_minutes": round((time.time() - t_start) / 60, 1),
        "torch_threads": args.threads, "variable_rate": vr_final,
        "init": str(args.init.name) if args.init else None,
    }
    if args.detector != "standin":
        pt = save_base_weights(net, model_id, args.out, record)
        print(f"wrote {pt}", flush=True)
    else:
        pt = save_base_weights(net, model_id, args.workdir, record)
        print(f"stand-in front end: weights kept in {pt} (never shipped)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
