#!/usr/bin/env python
"""Train the learned base layer (layer 0) on CPU or a CUDA GPU, from the clips or a training pack.

Three kinds of run (``--train``):

``all`` (default): every network, in two stages as in variable-rate post-training
(Kamisli et al., DCC 2024):

1. single rate: the model is trained at the reference gain 1.0 (quality level
   ``ref_level``) with loss ``R + lam * (lam_f * Df + lam_x * Dx)``;
2. variable-rate post-training: every step draws one quality level l, the
   latent is quantised with step 1/gain_l, the learned reconstruction offsets
   and the variable-rate hyperlatent are used, and the distortion weight is
   scaled by the square of level l's initial gain (the rate-distortion slope of a uniform quantiser of
   step 1/gain scales with 1/step**2), so one model covers all levels.

``p-path``: fine-tune the P-frame path (``ctx`` and ``ep_p``; every other tensor frozen,
so g_a, T, g_s and the detector geometry stay exactly those of the ``--init`` model and
the latent y and the detector's features F(x) of every pack frame are computed once and
cached) on unrolled GOPs coded as payload v2 codes them: an intra frame, then P-frames
whose entropy parameters use the INTRA frame's hyperprior h_s(z_hat(0)) and y_hat(t-1);
the reference chain runs through the quantised y_hat (straight-through rounding, means
on the coder's 1/128 grid, scales rounded up to the scale table, learned offsets); with
``--skip-block B`` a B x B block whose symbols all round to 0 copies y_hat(t-1) exactly
and costs only its flag (zero-skip, as ``CodingTools()`` does). P-frame rates are the
discretised Gaussian's -log2 P(symbol) of the coded symbols (what the rANS coder pays).
Loss per P-frame: ``bpp + lam * gain^2 * (lam_f * Df + lam_x * Dx + lam_t * Dtask)``
with gain = the model's (frozen) gain at the drawn quality.

``levels``: refit the variable-rate parts only (by default the per-level gains, the
reconstruction-offset net and the gain -> z step net; every transform frozen and cached as
in ``p-path``) on the same unrolled GOPs, the intra frame included (its y and z bits and
distortions count). Each step draws a level l; its distortion weight is fixed at
``lam * target_l^2`` (``--level-gains``, which also initialise the gains), never at the
learned gain, so a level cannot buy rate by lowering its own weight; ``--fixed-levels``
keeps chosen gains exactly where they start.

R is bits per pixel of y and z; Df the MSE between T(y_hat) and the detector's
own split features F(x), divided by the mean variance of F(x) (the ``--init`` model's
``feat_var`` in p-path runs) so lam_f does not depend on the detector's feature scale;
Dx the MSE of g_s(y_hat) against x in [0, 1]; with ``--lam-t`` the loss adds
``lam_t * Dtask``: the frozen detector back end's dense outputs on T(y_hat)
distilled toward its outputs on F(x) (see ``FrontEnd.task_loss``).

Data: ``--pack FILE`` (from ``tools/make_train_pack.py``: GOP sequences sampled from the
shared clips, the held-out frames of every clip recorded and never packed; every
``--val-every``-th sequence of the pack is kept for validation) or, without a pack, every
clip in ../shared/data/clips with the last 20% of each clip's frames held out.

Device: ``--device auto`` takes a CUDA GPU when torch sees one, else the CPU; the same
command runs unchanged on both. ``--threads`` sets torch's CPU threads. A run stops at
``--steps`` or after ``--minutes``, checkpoints every ``--epoch-steps`` (and writes the
weights so far), and ``--resume`` continues from ``<workdir>/checkpoint.pt``.

    nohup python tools/train_base.py --train p-path --pack runs/pack/gop8-192.npz \\
        --init base-yolox-nano-v2 --model-id base-yolox-nano-v3 --workdir runs/p-gop \\
        --device auto --threads 1 --minutes 60 > runs/p-gop.log 2>&1 &
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
sys.path.insert(0, str(REPO / "tools"))

from vcodec._compressai import quantize_ste  # noqa: E402 - compressai without its datasets/zoo
from vcodec.baselayer.learned.base_codec import PAD_VALUE, save_base_weights  # noqa: E402
from vcodec.baselayer.learned.base_net import SCALE_TABLE, BaseNet, BaseNetConfig, bits_of  # noqa: E402
from vcodec.io.frame import Frame  # noqa: E402

SHARED = REPO.parent / "shared"
CLIPS = SHARED / "data" / "clips"


# -- data --------------------------------------------------------------------------
def _fit(rgb: np.ndarray, max_long_side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) <= max_long_side:
        return rgb
    s = max_long_side / max(h, w)
    return cv2.resize(
        rgb, (int(round(w * s / 2)) * 2, int(round(h * s / 2)) * 2), interpolation=cv2.INTER_AREA
    )


def read_clip(
    path: Path, max_long_side: int = 832, step: int = 1, limit: int | None = None
) -> list[np.ndarray]:
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

    def to(self, device: torch.device) -> FrontEnd:
        (self.net if self.det is None else self.det).to(device)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.det is None:
                return self.net(x)
            if x.shape[-1] % 64 == 0 and x.shape[-2] % 64 == 0:
                # prepare(mode="pad") of a picture already padded: BGR 0..255 as float, on any device
                return self.det.front(x.mul(255.0).round().clamp(0, 255).flip(1))
            rgb = x.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            ts = [self.det.prepare(np.ascontiguousarray(im[..., ::-1]), mode="pad", multiple=64)[0]
                  for im in rgb]
            return self.det.front(torch.cat(ts, 0).to(x.device))


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
            h_cls = (
                t_obj.unsqueeze(-1) * F.binary_cross_entropy_with_logits(t[..., 5:], t_cls, reduction="none")
            ).sum()
        norm = t_obj.sum().clamp_min(1.0)
        l_obj = (F.binary_cross_entropy_with_logits(s[..., 4], t_obj, reduction="sum") - h_obj) / norm
        l_cls = (
            (
                t_obj.unsqueeze(-1) * F.binary_cross_entropy_with_logits(s[..., 5:], t_cls, reduction="none")
            ).sum()
            - h_cls
        ) / norm
        l_box = (t_obj.unsqueeze(-1) * (s[..., :4] - t[..., :4]).abs()).sum() / norm
        return l_obj + l_cls + l_box


# -- devices and data sources ---------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``auto``: the CUDA GPU when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise SystemExit(f"--device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


class ClipData:
    """Windows of frames from decoded clips (the data of runs without a pack)."""

    def __init__(self, clips: list[list[np.ndarray]]) -> None:
        self.clips = clips

    def sample(self, rng: random.Random, batch: int, crop: int, length: int) -> torch.Tensor:
        return sample_batch(self.clips, rng, batch, crop, length)


class PackData:
    """Windows of GOP sequences from a training pack (tools/make_train_pack.py)."""

    def __init__(self, seqs: np.ndarray) -> None:
        self.seqs = seqs  # N x T x S x S x 3 uint8

    def __len__(self) -> int:
        return len(self.seqs)

    def sample(self, rng: random.Random, batch: int, crop: int, length: int) -> torch.Tensor:
        n, t, s = self.seqs.shape[:3]
        length = min(length, t)
        crop = min(crop, s)
        out = np.empty((batch, length, crop, crop, 3), dtype=np.uint8)
        for b in range(batch):
            i, t0 = rng.randrange(n), rng.randrange(t - length + 1)
            y0, x0 = rng.randrange(s - crop + 1), rng.randrange(s - crop + 1)
            w = self.seqs[i, t0:t0 + length, y0:y0 + crop, x0:x0 + crop]
            out[b] = w[:, :, ::-1] if rng.random() < 0.5 else w
        return torch.from_numpy(out).permute(0, 1, 4, 2, 3).float().div_(255.0)


def load_pack_data(path: Path, val_every: int) -> tuple[PackData, PackData, dict[str, Any], list[int]]:
    """(train, validation, pack record, validation sequence indexes) of a pack."""
    from make_train_pack import load_pack

    seqs, record = load_pack(path)
    val_idx = list(range(0, len(seqs), val_every)) if val_every > 0 and len(seqs) > 1 else []
    tr_idx = [i for i in range(len(seqs)) if i not in set(val_idx)]
    if not tr_idx:
        raise SystemExit(f"{path}: no training sequences left after taking every {val_every}-th "
                         f"for validation")
    return PackData(seqs[tr_idx]), PackData(seqs[val_idx] if val_idx else seqs[:1]), record, val_idx


def pack_summary(path: Path, record: dict[str, Any], val_idx: list[int]) -> dict[str, Any]:
    """What the training record keeps about a pack: enough to rebuild it and to know what was held out."""
    from vcodec.hashing import file_sha256

    return {"pack": path.name, "pack_sha256": file_sha256(path), "sequences": len(record["sequences"]),
            "length": record["length"], "crop": record["crop"], "per_clip": record.get("per_clip", {}),
            "held_out_frames": {c["clip"]: c["held_out"] for c in record["clips"]},
            "validation_sequences": val_idx,
            "rebuild": f"python tools/make_train_pack.py --size {record['crop']} --length {record['length']} "
                       f"--holdout {record['holdout']} --seed {record['seed']}"}


# -- training: all networks ------------------------------------------------------------
def run_frames(net: BaseNet, front: FrontEnd, seq: torch.Tensor, gain: torch.Tensor, vr: bool,
               feat_norm: float, task: bool = False) -> dict[str, torch.Tensor]:
    """Code a B x T window (first frame I, rest P) and return rate and distortions."""
    b, t = seq.shape[:2]
    prev = None
    zero = torch.zeros((), device=seq.device)
    bits, df, dx, dt, bits_i = zero, zero, zero, zero, zero
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


def evaluate(net: BaseNet, front: FrontEnd, val: ClipData | PackData, feat_norm: float,
             level: int, vr: bool, crop: int, task: bool = False, length: int = 3,
             device: torch.device | None = None) -> dict[str, float]:
    """Held-out figures on fixed windows (seeded) at one quality level."""
    rng = random.Random(1234)
    net.eval()
    acc: dict[str, float] = {}
    with torch.no_grad():
        gain = net.gain[level].abs()
        n = 0
        for _ in range(4):
            seq = val.sample(rng, 2, crop, length).to(device or gain.device)
            r = run_frames(net, front, seq, gain, vr, feat_norm, task)
            for k, v in r.items():
                acc[k] = acc.get(k, 0.0) + float(v)
            n += 1
    net.train()
    return {k: round(v / n, 5) for k, v in acc.items()}


# -- training: the P path on unrolled GOPs (payload v2) -----------------------------------
def code_latent(net: BaseNet, y: torch.Tensor, means: torch.Tensor, scales: torch.Tensor,
                gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantise y as the v2 coder does, differentiably: (y_hat, bits per element, symbols).

    Means go to the coder's 1/mean_grid grid and scales up to the scale table's entry
    (both straight-through), symbols are rounded residuals (STE), y_hat adds the learned
    reconstruction offset to non-zero symbols; bits are the discretised Gaussian's
    -log2 P(symbol), what the rANS coder pays for them.
    """
    g = float(net.cfg.mean_grid)
    means = means + (torch.round(means * g) / g - means).detach()
    s = net.lower_bound_scale(scales * gain)
    table = SCALE_TABLE.to(device=s.device, dtype=s.dtype)
    s = s + (table[torch.bucketize(s.detach().contiguous(), table[:-1])] - s).detach()
    r = (y - means) * gain
    q = quantize_ste(r)
    off = net.offsets(s, gain.detach())
    off = torch.where(q.detach().abs() < 0.5, torch.zeros_like(off), off)
    y_hat = torch.sign(r).detach() * (q.abs() + off) / gain + means
    gc = net.gaussian_conditional
    lik = gc.likelihood_lower_bound(gc._likelihood(q, s))
    return y_hat, -torch.log2(lik), q


def _binary_entropy(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-3)
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


class GopCache:
    """y = g_a(x) and F(x) of every frame of a pack (and of its mirror image), computed once.

    Valid while g_a and the detector front are frozen (p-path runs).  Pixels stay uint8 for Dx.
    """

    def __init__(self, net: BaseNet, front: FrontEnd, data: PackData, device: torch.device,
                 flips: bool = True, chunk: int = 16) -> None:
        ys, fs, xs = [], [], []
        seqs = torch.from_numpy(data.seqs)  # N T S S 3
        views = [False, True] if flips else [False]
        with torch.no_grad():
            for flip in views:
                for i in range(len(seqs)):
                    x8 = seqs[i].permute(0, 3, 1, 2)  # T 3 S S
                    if flip:
                        x8 = x8.flip(-1)
                    x = x8.to(device).float().div(255.0)
                    ys.append(torch.cat([net.g_a(x[k:k + chunk]) for k in range(0, len(x), chunk)]))
                    fs.append(torch.cat([front(x[k:k + chunk]) for k in range(0, len(x), chunk)]))
                    xs.append(x8.to(device))
        self.y = torch.stack(ys)  # N' T M h w
        self.f = torch.stack(fs)  # N' T C H/8 W/8
        self.x = torch.stack(xs)  # N' T 3 H W uint8

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, idx: list[int], t0: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sl = slice(t0, t0 + length)
        return self.y[idx, sl], self.f[idx, sl], self.x[idx, sl]


def run_gop(net: BaseNet, front: FrontEnd, y: torch.Tensor, f: torch.Tensor, x8: torch.Tensor,
            gain: torch.Tensor, feat_norm: float, skip_block: int, lam_x: float, lam_t: float,
            detach_chain: bool = False, train_intra: bool = False) -> dict[str, torch.Tensor]:
    """Code B GOPs (B x T latents) as payload v2 does: I-frame, then P-frames on the intra hyperprior.

    ``train_intra`` (``--train levels``): the intra frame is in the graph too (the gain, z step
    and offsets shape it), and the result adds its z bits (``bpp_z``) and distortions.
    """
    b, t = y.shape[:2]
    npx = b * x8.shape[-1] * x8.shape[-2]
    zero = torch.zeros((), device=y.device)
    bits_z, dx_i, dt_i = zero, zero, zero
    # p-path runs: the intra frame is a frozen path, fixed
    with torch.set_grad_enabled(train_intra and torch.is_grad_enabled()):
        y0 = y[:, 0]
        z = net.h_a(y0)
        zq = net.z_qstep(gain)
        med = net.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        if train_intra:
            # rate on noisy z while training, on rounded z when evaluating (no grad); STE for h_s
            _, z_lik = net.entropy_bottleneck(z, qs=zq, training=torch.is_grad_enabled(), ste=False)
            bits_z = bits_of(z_lik)
            z_hat = quantize_ste((z - med) / zq) * zq + med
        else:
            z_hat = torch.round((z - med) / zq) * zq + med
        hyper = net.h_s(z_hat)
        means, scales = net.entropy_params(hyper, None)
        prev, bits_el, _ = code_latent(net, y0, means, scales, gain)
        bits_i = bits_el.sum()
        f_hat0 = net.T(prev)
        df_i = F.mse_loss(f_hat0, f[:, 0]) / feat_norm
        if train_intra and lam_t > 0:
            dt_i = front.task_loss(f_hat0, f[:, 0])
        if train_intra and lam_x > 0:
            dx_i = F.mse_loss(net.g_s(prev), x8[:, 0].float().div(255.0))
    bits, df, dx, dt = zero, zero, zero, zero
    flag_bits, skipped, blocks = 0.0, 0.0, 0.0
    for k in range(1, t):
        means, scales = net.entropy_params(hyper, prev)
        y_hat, bits_el, sym = code_latent(net, y[:, k], means, scales, gain)
        if skip_block:
            nz = (sym.detach() != 0).any(dim=1, keepdim=True).float()
            coded_blk = F.max_pool2d(nz, skip_block, skip_block, ceil_mode=True)
            coded = F.interpolate(coded_blk, scale_factor=skip_block, mode="nearest")
            coded = coded[..., : nz.shape[-2], : nz.shape[-1]]
            y_hat = torch.where(coded > 0, y_hat, prev)  # a skipped block copies y_hat(t-1) exactly
            bits = bits + (bits_el * coded).sum()
            share = 1.0 - float(coded_blk.mean())
            flag_bits += _binary_entropy(share) * coded_blk.numel()
            skipped += share * coded_blk.numel()
            blocks += coded_blk.numel()
        else:
            bits = bits + bits_el.sum()
        f_hat = net.T(y_hat)
        df = df + F.mse_loss(f_hat, f[:, k]) / feat_norm
        if lam_t > 0:
            dt = dt + front.task_loss(f_hat, f[:, k])
        if lam_x > 0:
            dx = dx + F.mse_loss(net.g_s(y_hat), x8[:, k].float().div(255.0))
        prev = y_hat.detach() if detach_chain else y_hat
    n_p = t - 1
    bpp_p = (bits + flag_bits) / (npx * n_p)
    out = {"bpp_p": bpp_p, "df": df / n_p, "dx": dx / n_p, "dt": dt / n_p, "bpp_i": bits_i / npx,
           "df_i": df_i, "p_over_i": bpp_p.detach() / (bits_i / npx).clamp_min(1e-9),
           "skip": torch.tensor(skipped / blocks if blocks else 0.0)}
    if train_intra:
        # whole-GOP figures: every frame's bits (intra y and z, P with skip flags) and distortions
        out.update(bpp_z=bits_z / npx, dx_i=dx_i, dt_i=dt_i,
                   bpp=(bits_i + bits_z) / (npx * t) + bpp_p * (n_p / t),
                   df_all=(df_i + df) / t, dx_all=(dx_i + dx) / t, dt_all=(dt_i + dt) / t)
    return out


def evaluate_gop(net: BaseNet, front: FrontEnd, cache: GopCache, idx: list[int], feat_norm: float,
                 qualities: list[float], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """P-path (``--train levels``: whole-GOP) figures on the validation sequences, per quality."""
    out: dict[str, dict[str, float]] = {}
    levels = args.train == "levels"
    with torch.no_grad():
        for q in qualities:
            gain = net.gain_at(q).detach()
            acc: dict[str, float] = {}
            for c in range(0, len(idx), 8):
                y, f, x8 = cache.batch(idx[c:c + 8], 0, cache.y.shape[1])
                r = run_gop(net, front, y, f, x8, gain, feat_norm, args.skip_block, args.lam_x, args.lam_t,
                            train_intra=levels)
                for k, v in r.items():
                    acc[k] = acc.get(k, 0.0) + float(v) * len(idx[c:c + 8])
            out[f"q{q:g}"] = {k: round(v / max(1, len(idx)), 5) for k, v in acc.items()}
    return out


def train_p_path(args: argparse.Namespace, device: torch.device, t_start: float) -> int:
    from vcodec.baselayer.learned.base_codec import BaseCodec

    if args.pack is None:
        raise SystemExit(f"--train {args.train} needs --pack (the latents of the pack are cached once)")
    if args.init is None:
        raise SystemExit(f"--train {args.train} needs --init MODEL (a .json descriptor or a shipped "
                         f"model id)")
    src = BaseCodec.from_weights(str(args.init))
    net = src.net
    feat_norm = float(src.record.get("feat_var") or 0.0)
    levels_mode = args.train == "levels"
    init_gains = [float(g) for g in net.gain.detach()]
    targets = list(init_gains)
    fixed: list[int] = []
    if levels_mode:
        if args.level_gains:
            targets = [float(v) for v in args.level_gains.split(",")]
            rising = all(b > a for a, b in zip(targets[:-1], targets[1:], strict=True))
            if len(targets) != net.levels or not rising or targets[0] <= 0:
                raise SystemExit(f"--level-gains needs {net.levels} positive, strictly increasing gains; "
                                 f"got {args.level_gains!r}")
            with torch.no_grad():  # overwritten by the checkpoint on --resume
                net.gain.copy_(torch.tensor(targets))
        fixed = sorted({int(v) for v in args.fixed_levels.split(",") if v.strip()})
        if any(not 0 <= lv < net.levels for lv in fixed):
            raise SystemExit(f"--fixed-levels {args.fixed_levels!r}: levels are 0..{net.levels - 1}")
        # a level's quality is l / (levels - 1): validate exactly at the levels
        args.val_qualities = [lv / (net.levels - 1) for lv in range(net.levels)]
    trainable = [s for s in args.trainable.split(",") if s]
    for name, p in net.named_parameters():
        # the entropy bottleneck's quantiles follow its aux loss, never the main loss
        p.requires_grad_(name.split(".")[0] in trainable and not name.endswith("quantiles"))
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise SystemExit(f"--trainable {args.trainable!r} names no parameters")
    net.to(device).train()
    front = FrontEnd(net.cfg.detector).to(device)
    if front.det is not None:
        front.det.eval()
        for p in front.det.parameters():
            p.requires_grad_(False)
    if args.lam_t > 0 and not front.has_head:
        raise SystemExit(f"--lam-t needs a detector with a YOLOX head; {net.cfg.detector} has none")
    train, val, pack_record, val_idx = load_pack_data(args.pack, args.val_every)
    print(f"pack {args.pack}: {len(train)} training and {len(val)} validation sequences "
          f"of {train.seqs.shape[1]} frames {train.seqs.shape[2]}x{train.seqs.shape[3]}", flush=True)
    t0 = time.time()
    cache = GopCache(net, front, train, device, flips=not args.no_flip)
    vcache = GopCache(net, front, val, device, flips=False)
    print(f"cached y and F(x) of {len(cache)} + {len(vcache)} sequences in {time.time() - t0:.0f} s",
          flush=True)
    if feat_norm <= 0:
        feat_norm = float(cache.f[:, 0].var())
    qualities = [float(s) for s in args.qualities.split(",")]
    gain_lr = args.gain_lr if args.gain_lr > 0 else args.lr
    opt = torch.optim.Adam([{"params": [p for p in params if p is not net.gain]},
                            {"params": [p for p in params if p is net.gain], "lr": gain_lr}], lr=args.lr)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = args.workdir / "checkpoint.pt"
    step, history, seconds_before = 0, [], 0.0
    rng = random.Random(args.seed)
    if args.resume:
        st = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        step, history, seconds_before = st["step"], st["history"], st.get("train_seconds", 0.0)
        rng.setstate(st["rng"])
        print(f"resumed from {ckpt} at step {step}", flush=True)
    else:
        base = evaluate_gop(net, front, vcache, list(range(len(vcache))), feat_norm, args.val_qualities, args)
        history.append({"step": 0, "val": base, "note": f"{src.model_id} before fine-tuning"})
        print(json.dumps(history[-1]), flush=True)
    length = min(args.gop, cache.y.shape[1])
    deadline = t_start + args.minutes * 60
    acc: dict[str, float] = {}
    n_acc, t_epoch = 0, time.time()
    best: dict[str, float] = {}

    def elapsed() -> float:
        return seconds_before + time.time() - t_start

    def save(final: bool = False) -> Path:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "history": history,
                    "rng": rng.getstate(), "train_seconds": elapsed(),
                    "args": {k: str(v) for k, v in vars(args).items()}}, tmp)
        tmp.replace(ckpt)
        record = {
            "kind": "p-path fine-tuning on unrolled GOPs (payload v2 coding)",
            "init": f"{src.model_id} (sha256 {src.sha256})",
            "trainable": trainable, "frozen": "every other tensor (g_a, h_a, h_s, ep_i, T, g_s, gains, "
                                              "offsets, entropy bottleneck) equals the init model's",
        }
        if levels_mode:
            record |= {
                "kind": "variable-rate refit on unrolled GOPs (payload v2 coding, intra frame included)",
                "frozen": "every other tensor (g_a, h_a, h_s, ctx, ep_i, ep_p, T, g_s, entropy bottleneck "
                          "quantiles) equals the init model's",
                "target_gains": targets, "fixed_levels": fixed, "gain_lr": gain_lr,
                "init_model_gains": [round(g, 4) for g in init_gains],
                "gains": [round(float(g), 4) for g in net.gain.detach()],
                "level_draw": "uniform over the levels, one per step",
            }
            # a shipped model's record says how many steps trained its tensors: the init model's plus these
            ref = f"q{args.val_qualities[int(np.argmin([abs(g - 1.0) for g in targets]))]:g}"
            record |= {"run_steps": step, "init_steps": int(src.record.get("steps", 0)),
                       "variable_rate": True, "final_val_ref_level": history[-1]["val"][ref],
                       "val_levels": history[-1]["val"]}
            if step == 0:  # --steps 0: the levels are only moved to --level-gains, nothing is trained
                record |= {"kind": "level gains set to --level-gains (no step trained; the validation is "
                                   "that of the resulting model)",
                           "trainable": [], "frozen": "every tensor but the gains equals the init model's"}
        record |= {
            "data": pack_summary(args.pack, pack_record, val_idx), "flip_augmentation": not args.no_flip,
            "gop": f"1 intra + {length - 1} P-frames per sample, P-frames on the intra frame's hyperprior, "
                   f"reference chain through the quantised y_hat (STE)"
                   + (f", zero-skip {args.skip_block}x{args.skip_block} blocks simulated"
                      if args.skip_block else ""),
            "loss": (f"bpp(I y+z, P, skip flags) + {args.lam}*target_gain[level]^2*({args.lam_f}*Df/feat_var "
                     f"+ {args.lam_x}*Dx + {args.lam_t}*Dtask), distortions averaged over all frames"
                     if levels_mode else
                     f"bpp_P + {args.lam}*gain^2*({args.lam_f}*Df/feat_var + {args.lam_x}*Dx "
                     f"+ {args.lam_t}*Dtask)"),
            "feat_var": feat_norm, "qualities": None if levels_mode else qualities, "batch": args.batch,
            "lr": args.lr, "steps": step + (int(src.record.get("steps", 0)) if levels_mode else 0),
            "seed": args.seed, "device": str(device), "torch_threads": args.threads,
            "minutes": round(elapsed() / 60, 1), "history": history[-3:], "validation_before": history[0],
            "final": final, "lineage": list(src.record.get("lineage", [])) + [
                f"{args.model_id}: from {src.model_id}, "
                + ("level gains set to " + ", ".join(f"{g:.4g}" for g in targets) if levels_mode and step == 0
                   else f"variable-rate parts ({', '.join(trainable)}) refitted at fixed per-level weights"
                   if levels_mode else "P path (ctx, ep_p) fine-tuned on unrolled GOPs")],
            "parent_record": {k: v for k, v in src.record.items() if k not in ("lineage",)},
        }
        return save_base_weights(net.to("cpu"), args.model_id, args.workdir, record) if device.type == "cpu" \
            else _save_from_device(net, args.model_id, args.workdir, record, device)

    while step < args.steps and time.time() < deadline:
        idx = [rng.randrange(len(cache)) for _ in range(args.batch)]
        t0 = rng.randrange(cache.y.shape[1] - length + 1)
        if levels_mode:
            level = rng.randrange(net.levels)
            gain = net.gain[level].abs()  # differentiable: the gains themselves are refitted
        else:
            q = qualities[rng.randrange(len(qualities))]
            gain = net.gain_at(q).detach()
        y, f, x8 = cache.batch(idx, t0, length)
        r = run_gop(net, front, y, f, x8, gain, feat_norm, args.skip_block, args.lam_x, args.lam_t,
                    train_intra=levels_mode)
        if levels_mode:
            # the level's distortion weight is fixed by its TARGET gain: tied to the learned gain, a
            # lower gain also lowered its own weight and base-yolox-nano-v2's levels 0-1 collapsed
            lam = args.lam * targets[level] ** 2
            loss = r["bpp"] + lam * (args.lam_f * r["df_all"] + args.lam_x * r["dx_all"]
                                     + args.lam_t * r["dt_all"])
        else:
            lam = args.lam * float(gain) ** 2
            loss = r["bpp_p"] + lam * (args.lam_f * r["df"] + args.lam_x * r["dx"] + args.lam_t * r["dt"])
        opt.zero_grad()
        loss.backward()
        if net.gain.grad is not None and fixed:
            net.gain.grad[fixed] = 0.0  # Adam then leaves them exactly where they are
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        if levels_mode:
            with torch.no_grad():  # gains positive and strictly increasing (lowest rate first)
                g = net.gain.data.abs().clamp_min(0.05)
                for lv in range(net.levels - 2, -1, -1):
                    if lv not in fixed:
                        g[lv] = torch.minimum(g[lv], g[lv + 1] / 1.05)
                net.gain.data.copy_(g)
        for k, v in r.items():
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["loss"] = acc.get("loss", 0.0) + float(loss.detach())
        n_acc += 1
        step += 1
        if step % args.epoch_steps == 0 or step >= args.steps or time.time() >= deadline:
            tr = {k: round(v / max(1, n_acc), 5) for k, v in acc.items()}
            ev = evaluate_gop(net, front, vcache, list(range(len(vcache))), feat_norm, args.val_qualities,
                              args)
            history.append({"step": step, "train": tr, "val": ev, "sec": round(time.time() - t_epoch, 1)})
            print(json.dumps(history[-1]), flush=True)
            acc, n_acc, t_epoch = {}, 0, time.time()
            pt = save()
            # keep the best weights so far by the shipping rule: the lowest P/I at the first validation
            # quality among those whose P-frame feature error is not above the init model's
            q0 = f"q{args.val_qualities[0]:g}"
            first = history[0]["val"][q0]
            if (not levels_mode and ev[q0]["df"] <= first["df"]
                    and ev[q0]["p_over_i"] < best.get("p_over_i", first["p_over_i"])):
                best.update(ev[q0], step=step)
                (args.workdir / "best").mkdir(exist_ok=True)
                for suffix in (".pt", ".json"):
                    (args.workdir / "best" / pt.with_suffix(suffix).name).write_bytes(
                        pt.with_suffix(suffix).read_bytes())
                print(f"best so far: step {step}, {q0} {ev[q0]}", flush=True)
    pt = save(final=True)
    print(f"wrote {pt} after {step} steps ({elapsed() / 60:.1f} min on {device})", flush=True)
    return 0


def _save_from_device(net: BaseNet, model_id: str, out: Path, record: dict[str, Any],
                      device: torch.device) -> Path:
    """save_base_weights on a CPU copy (the weights file is device-independent), net stays on device."""
    import copy

    cpu = copy.deepcopy(net).to("cpu")
    return save_base_weights(cpu, model_id, out, record)


def derive(detector: str, source_json: Path, out: Path) -> int:
    """Ship a trained base model for another detector whose split front end is the SAME function.

    ``vcodec-det`` keeps YOLOX-Nano's stem/dark2/dark3 frozen as its front end, so the
    base model trained against YOLOX-Nano's front is trained against vcodec-det's too.
    This checks that claim on held-out frames of every clip (features must agree to
    1e-5) before writing ``base-<detector>-vN`` (the source's version) with the same tensors.
    """
    from vcodec.baselayer.learned.base_codec import BaseCodec

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
    ap.add_argument(
        "--detector", default="yolox-nano", help="split detector (yolox-nano, vcodec-det, standin)"
    )
    ap.add_argument("--train", choices=("all", "p-path", "levels"), default="all",
                    help="all: every network (two stages); p-path: fine-tune ctx and ep_p on unrolled GOPs; "
                         "levels: refit the variable-rate parts (or only move the gains, --steps 0)")
    ap.add_argument("--pack", type=Path, default=None, help="training pack from tools/make_train_pack.py "
                    "(default for --train all: the clips in ../shared/data/clips)")
    ap.add_argument("--val-every", type=int, default=10, help="every N-th pack sequence is for validation")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    ap.add_argument("--workdir", type=Path, default=None, help="checkpoint and log folder")
    ap.add_argument("--resume", action="store_true", help="continue from <workdir>/checkpoint.pt")
    ap.add_argument("--minutes", type=float, default=50.0, help="wall-clock budget of this run")
    ap.add_argument("--stage1-frac", type=float, default=0.6, help="share of steps for single-rate training")
    ap.add_argument("--steps", type=int, default=4000, help="total steps (stage 1 + stage 2)")
    ap.add_argument("--epoch-steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--gop", type=int, default=None,
                    help="frames per training sample, intra first (default: 3 for --train all, the pack's "
                         "sequence length for p-path)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lam", type=float, default=1.0, help="distortion weight at gain 1.0")
    ap.add_argument("--lam-f", type=float, default=4.0, help="feature MSE weight (normalised)")
    ap.add_argument("--lam-x", type=float, default=10.0, help="pixel MSE weight")
    ap.add_argument("--lam-t", type=float, default=0.0,
                    help="weight of the task term: distillation through the detector's frozen back end "
                         "(0 = off; needs a detector with a YOLOX head)")
    ap.add_argument("--trainable", default=None,
                    help="p-path / levels: top-level modules that train (default ctx,ep_p for p-path; "
                         "gain,quant_offset,gain2zqstep for levels)")
    ap.add_argument("--level-gains", default=None,
                    help="levels: target gain per level, lowest first: each level's gain starts there and "
                         "its distortion weight is fixed at lam * target^2 (default: the init model's gains)")
    ap.add_argument("--fixed-levels", default="", help="levels: level indexes whose gain does not train")
    ap.add_argument("--gain-lr", type=float, default=0.0, help="levels: Adam step of the gains (0 = --lr)")
    ap.add_argument("--qualities", default="0.25,0.5,0.5,0.5,0.625,0.75,0.875,1.0",
                    help="p-path: qualities drawn per step (repeat one to draw it more often)")
    ap.add_argument("--val-qualities", default="0.5,0.75", help="p-path: qualities of the validation figures")
    ap.add_argument("--skip-block", type=int, default=2, help="p-path: simulated zero-skip block (0 = off)")
    ap.add_argument("--no-flip", action="store_true", help="p-path: no mirrored copies of the pack")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="where weights are written (default: vcodec/weights for --train all, the workdir "
                         "for p-path runs, whose weights are shipped by hand once measured)")
    ap.add_argument("--model-id", default=None, help="default base-<detector>-v1")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--init", default=None,
                    help="all: start from another base model's .pt (tensors whose shape matches); "
                         "p-path: the model to fine-tune (.json descriptor or shipped id)")
    ap.add_argument("--derive-from", type=Path, default=None,
                    help="instead of training: ship the model in this .json for --detector, after "
                         "checking that both detectors have the same split front end")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.derive_from is not None:
        return derive(args.detector, args.derive_from, args.out or REPO / "vcodec" / "weights")

    if args.workdir is None:
        ap.error("--workdir is required for training")
    ckpt = args.workdir / "checkpoint.pt"
    if args.resume and not ckpt.exists():
        ap.error(f"--resume: {ckpt} does not exist")
    if not args.resume and ckpt.exists():
        ap.error(f"{ckpt} exists: pass --resume to continue it, or another --workdir")
    device = resolve_device(args.device)
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                f", {args.threads} torch thread(s)"), flush=True)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()
    if args.train in ("p-path", "levels"):
        args.trainable = args.trainable or ("ctx,ep_p" if args.train == "p-path"
                                            else "gain,quant_offset,gain2zqstep")
        args.val_qualities = [float(s) for s in args.val_qualities.split(",")]
        args.model_id = args.model_id or f"base-{args.train}-candidate"
        if args.pack is not None:
            from make_train_pack import load_pack  # noqa: F401  (fail early when tools/ is not importable)
        if args.gop is None:
            args.gop = 1 << 30  # the pack's sequence length
        if args.gop < 5:
            ap.error("--gop must be at least 5 for p-path training (an intra frame and >= 4 P-frames)")
        return train_p_path(args, device, t_start)
    args.gop = args.gop or 3
    args.out = args.out or REPO / "vcodec" / "weights"
    front = FrontEnd(args.detector).to(device)
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
    net.to(device)
    ref_level = int(np.argmin([abs(g - 1.0) for g in cfg.gain_init]))
    main_params = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=args.lr)
    aux_opt = torch.optim.Adam([net.entropy_bottleneck.quantiles], lr=1e-3)
    args.workdir.mkdir(parents=True, exist_ok=True)
    step, feat_norm, history, stage2_from, seconds_before = 0, 0.0, [], -1, 0.0
    rng = random.Random(args.seed)
    if args.resume:
        st = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(st["net"], strict=False)
        opt.load_state_dict(st["opt"])
        aux_opt.load_state_dict(st["aux_opt"])
        step, feat_norm, history = st["step"], st["feat_norm"], st["history"]
        stage2_from = st.get("stage2_from", -1)
        seconds_before = st.get("train_seconds", 0.0)
        rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        print(f"resumed from {ckpt} at step {step}", flush=True)

    data_record: Any
    if args.pack is not None:
        train, val, pack_record, val_idx = load_pack_data(args.pack, args.val_every)
        data_record = pack_summary(args.pack, pack_record, val_idx)
        holdout = "frames listed per clip in data.held_out_frames (never packed) + validation_sequences"
        print(f"data: pack {args.pack}, {len(train)} training / {len(val)} validation sequences", flush=True)
    else:
        clips_train, clips_val, names = load_data(cfg.max_long_side)
        train, val = ClipData(clips_train), ClipData(clips_val)
        data_record, holdout = names, "last 20% of each clip's frames"
        print(f"data: {names}", flush=True)
    if feat_norm == 0.0:
        vs = [float(front(train.sample(random.Random(7), 4, args.crop, 1)[:, 0].to(device)).var())
              for _ in range(4)]
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
                    "step": step, "feat_norm": feat_norm, "stage2_from": stage2_from, "history": history,
                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                    "train_seconds": seconds_before + time.time() - t_start,
                    "args": {k: str(v) for k, v in vars(args).items()}}, tmp)
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
        seq = train.sample(rng, args.batch, args.crop, args.gop).to(device)
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
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["loss"] = acc.get("loss", 0.0) + float(loss.detach())
        n_acc += 1
        step += 1
        if step % args.epoch_steps == 0 or step == args.steps or time.time() >= deadline:
            tr = {k: round(v / max(1, n_acc), 5) for k, v in acc.items()}
            ev = evaluate(net, front, val, feat_norm, ref_level, vr, args.crop, task, args.gop, device)
            rec = {"step": step, "stage": 2 if vr else 1, "train": tr, "val_ref_level": ev,
                   "gains": [round(float(g), 4) for g in net.gain.detach()],
                   "sec": round(time.time() - t_epoch, 1)}
            history.append(rec)
            print(json.dumps(rec), flush=True)
            acc, n_acc, t_epoch = {}, 0, time.time()
            save_ckpt()

    save_ckpt()
    # final validation at every level (stage 2 figures are what the shipped model does)
    vr_final = stage2_from >= 0 and step > stage2_from
    val_levels = {f"level{lv}_gain{float(net.gain.detach()[lv]):.3f}":
                  evaluate(net, front, val, feat_norm, lv, vr_final, args.crop, task, args.gop, device)
                  for lv in range(net.levels)} if vr_final else {}
    model_id = args.model_id or f"base-{args.detector}-v1"
    record: dict[str, Any] = {
        "data": data_record, "holdout": holdout, "steps": step,
        "stage1_steps": stage2_from if stage2_from >= 0 else step, "batch": args.batch, "crop": args.crop,
        "gop": args.gop,
        "loss": f"bpp + {args.lam}*gain^2*({args.lam_f}*Df/feat_var + {args.lam_x}*Dx"
                + (f" + {args.lam_t}*Dtask)" if task else ")"),
        "feat_var": feat_norm, "seed": args.seed, "detector": args.detector,
        "final_train": history[-1]["train"] if history else {},
        "final_val_ref_level": history[-1]["val_ref_level"] if history else {},
        "val_levels": val_levels, "minutes": round((seconds_before + time.time() - t_start) / 60, 1),
        "device": str(device), "torch_threads": args.threads, "variable_rate": vr_final,
        "init": Path(args.init).name if args.init else None,
    }
    net_cpu = net.to("cpu")
    if args.detector != "standin":
        pt = save_base_weights(net_cpu, model_id, args.out, record)
        print(f"wrote {pt}", flush=True)
    else:
        pt = save_base_weights(net_cpu, model_id, args.workdir, record)
        print(f"stand-in front end: weights kept in {pt} (never shipped)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
