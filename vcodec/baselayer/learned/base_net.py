"""The learned base-layer network (layer 0): transforms, hyperprior, temporal context.

This module holds the *trainable* part of the base layer.  Bit-exact coding
(quantised entropy parameters, payload layout) lives in
:mod:`vcodec.baselayer.learned.base_codec`; training lives in ``tools/train_base.py``.

Shapes (input picture ``x``: N x 3 x H x W RGB in [0, 1], H and W multiples of 64)::

    g_a   x            -> y       N x M  x H/16 x W/16   (analysis, stride 16)
    h_a   y            -> z       N x Nz x H/64 x W/64   (hyper analysis)
    h_s   z_hat        -> hyper   N x M  x H/16 x W/16   (hyper synthesis)
    ctx   y_hat(t-1)   -> ctx     N x M  x H/16 x W/16   (temporal context, P-frames)
    ep_i  hyper              -> (means, scales)            I-frames: hyperprior alone
    ep_p  [hyper, ctx]       -> (means - y_hat(t-1), scales) P-frames
    T     y_hat        -> f       N x Cs x H/8  x W/8    (detector split features)
    g_s   y_hat        -> x_base  N x 3  x H x W         (coarse picture)

Variable rate (after Kamisli, Racape and Choi, DCC 2024, as in CompressAI's
``vbr.py``): one quantisation step ``1/gain`` for every element of y, a
learned quantisation-reconstruction offset ``QuantABCD(stdev, gain)`` and a
variable-rate hyperlatent whose step comes from ``gain2zqstep(1/gain)``.
``gain`` is interpolated log-linearly between the learned per-level gains,
so the quality knob is continuous over the trained range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vcodec._compressai import (
    EntropyBottleneckVbr,
    GaussianConditional,
    LowerBound,
    get_scale_table,
    quantize_ste,
)
from vcodec.errors import ConfigError

__all__ = ["BaseNetConfig", "BaseNet", "SCALE_TABLE"]

#: CompressAI's default table of 64 Gaussian scales, 0.11 .. 256 (log spaced)
SCALE_TABLE: torch.Tensor = get_scale_table().double()


@dataclass
class BaseNetConfig:
    """Architecture of a base-layer model; stored beside the weights, never inferred."""

    detector: str = "yolox-nano"  # split detector whose front end T imitates
    split_channels: int = 64  # channels of the detector's split features
    split_stride: int = 8
    n: int = 64  # channels of g_a / g_s / hyper nets
    m: int = 96  # latent channels
    nz: int = 32  # hyperlatent channels
    t_channels: int = 96  # hidden channels of the latent transform T
    # learned gains of the variable-rate levels, lowest rate first; quality 0..1 spans them
    gain_init: list[float] = field(default_factory=lambda: [0.25, 0.4, 0.63, 1.0, 1.6])
    mean_grid: int = 128  # means are rounded to 1/mean_grid (determinism)
    offset_grid: int = 1024  # quantisation offsets and z step rounded to this grid
    max_long_side: int = 832  # HD input is downscaled so the long side fits (spatial scalability)
    multiple: int = 64  # the coded picture is padded to a multiple of this
    # detector whose (frozen) split front end also feeds g_a: the encoder then sees the very
    # features T must reproduce, which a small pixel-only g_a could not learn on CPU budgets
    encoder_front: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaseNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"base model config has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


def _conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 3) -> nn.ConvTranspose2d:
    # exact x2 upsampling: out = 2 * in
    return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=k // 2, output_padding=1)


class BaseNet(nn.Module):
    """All trainable parts of the base layer (see the module docstring)."""

    def __init__(self, cfg: BaseNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, m, nz = cfg.n, cfg.m, cfg.nz
        act = nn.LeakyReLU
        self.front_enc: nn.Module | None = None
        if cfg.encoder_front:
            self.front_enc = _frozen_front(cfg.encoder_front)
            self.g_a_pix = nn.Sequential(
                _conv(3, n, 5, 2), act(inplace=True), _conv(n, n, 3, 2), act(inplace=True),
                _conv(n, n, 3, 2), act(inplace=True),
            )
            self.g_a_head = nn.Sequential(_conv(n + cfg.split_channels, n, 3), act(inplace=True),
                                          _conv(n, m, 3, 2))
        else:
            self.g_a_seq = nn.Sequential(
                _conv(3, n, 5, 2), act(inplace=True), _conv(n, n, 3, 2), act(inplace=True),
                _conv(n, n, 3, 2), act(inplace=True), _conv(n, m, 3, 2),
            )
        self.g_s = nn.Sequential(
            _deconv(m, n), act(inplace=True), _deconv(n, n), act(inplace=True),
            _deconv(n, n // 2), act(inplace=True), _deconv(n // 2, 3, 5),
        )
        self.h_a = nn.Sequential(
            _conv(m, n, 3), act(inplace=True), _conv(n, n, 3, 2), act(inplace=True),
            _conv(n, nz, 3, 2),
        )
        self.h_s = nn.Sequential(
            _deconv(nz, n), act(inplace=True), _deconv(n, n), act(inplace=True), _conv(n, m, 3),
        )
        self.ctx = nn.Sequential(_conv(m, n, 3), act(inplace=True), _conv(n, m, 3))
        self.ep_i = nn.Sequential(
            _conv(m, m, 1), act(inplace=True), _conv(m, 2 * m, 1),
        )
        self.ep_p = nn.Sequential(
            _conv(2 * m, m, 1), act(inplace=True), _conv(m, 2 * m, 1),
        )
        t = cfg.t_channels
        up = cfg.split_stride == 8  # stride 16 -> 8 needs one x2 step
        self.T = nn.Sequential(
            _conv(m, t, 3), act(inplace=True),
            _deconv(t, t) if up else _conv(t, t, 3), act(inplace=True),
            _conv(t, cfg.split_channels, 3),
        )
        self.entropy_bottleneck = EntropyBottleneckVbr(nz)
        self.gaussian_conditional = GaussianConditional(None)
        # variable rate: per-level gains (inverse quantisation steps), learned in post-training
        self.gain = nn.Parameter(torch.tensor(cfg.gain_init, dtype=torch.float32))
        self.quant_offset = nn.Sequential(  # (stdev, gain) -> reconstruction offset
            nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 1),
        )
        self.gain2zqstep = nn.Sequential(  # 1/gain -> hyperlatent quantisation step
            nn.Linear(1, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1),
            nn.Softplus(),
        )
        self.lower_bound_zqstep = LowerBound(0.5)
        self.lower_bound_scale = LowerBound(float(SCALE_TABLE[0]))
        if cfg.split_stride not in (8, 16):
            raise ConfigError(f"split_stride {cfg.split_stride} is not supported; use 8 or 16")

    def g_a(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis: RGB [0, 1] -> y (stride 16)."""
        if self.front_enc is None:
            return self.g_a_seq(x)
        with torch.no_grad():
            f = self.front_enc(x.flip(1) * 255.0)  # the detector's input: BGR 0..255
        return self.g_a_head(torch.cat([self.g_a_pix(x), f], dim=1))

    # -- rate control ------------------------------------------------------
    @property
    def levels(self) -> int:
        return int(self.gain.numel())

    def gain_at(self, quality: float | torch.Tensor) -> torch.Tensor:
        """Gain for a continuous quality in [0, 1]: log-linear between learned levels."""
        g = self.gain.abs().clamp_min(1e-3)
        pos = torch.as_tensor(quality, dtype=g.dtype).clamp(0.0, 1.0) * (self.levels - 1)
        lo = int(torch.floor(pos).clamp(max=self.levels - 2).item())
        frac = pos - lo
        return torch.exp(torch.log(g[lo]) * (1 - frac) + torch.log(g[lo + 1]) * frac)

    def z_qstep(self, gain: torch.Tensor) -> torch.Tensor:
        q = self.gain2zqstep((1.0 / gain).reshape(1, 1).to(self.gain.dtype))
        return self.lower_bound_zqstep(q).reshape(())

    def offsets(self, stdev: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """Quantisation-reconstruction offset for each element (toward zero, like vbr.py)."""
        inp = torch.stack([stdev, gain.to(stdev.dtype).expand_as(stdev)], dim=-1)
        return -self.quant_offset(inp).squeeze(-1)

    # -- entropy parameters --------------------------------------------------
    def entropy_params(
        self, hyper: torch.Tensor, prev: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) of y from the hyperprior and, for P-frames, y_hat(t-1)."""
        if prev is None:
            out = self.ep_i(hyper)
            means, scales = out.chunk(2, 1)
        else:
            out = self.ep_p(torch.cat([hyper, self.ctx(prev)], dim=1))
            dmeans, scales = out.chunk(2, 1)
            # predict y_t around y_hat(t-1): static content then costs almost nothing
            means = prev + dmeans
        return means, F.softplus(scales)

    # -- training forward ------------------------------------------------------
    def forward_frame(
        self,
        x: torch.Tensor,
        prev: torch.Tensor | None,
        gain: torch.Tensor,
        variable_rate: bool,
    ) -> dict[str, torch.Tensor]:
        """Differentiable proxy of coding one frame (noise for rate, STE for y_hat)."""
        y = self.g_a(x)
        z = self.h_a(y)
        if variable_rate:
            zq = self.z_qstep(gain)
            z_hat, z_lik = self.entropy_bottleneck(z, qs=zq, training=None, ste=False)
            # decoders see the rounded hyperlatent (STE), the rate model sees the noisy one
            med = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
            z_hat = quantize_ste((z - med) / zq) * zq + med
        else:
            _, z_lik = self.entropy_bottleneck(z)
            med = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
            z_hat = quantize_ste(z - med) + med
        hyper = self.h_s(z_hat)
        means, scales = self.entropy_params(hyper, prev)
        _, y_lik = self.gaussian_conditional(y * gain, scales * gain, means=means * gain)
        r = (y - means) * gain
        q = quantize_ste(r)
        if variable_rate:
            stdev = self.lower_bound_scale(scales * gain)
            off = self.offsets(stdev, gain.detach())
            off = torch.where(q.detach().abs() < 0.5, torch.zeros_like(off), off)
            y_hat = torch.sign(r).detach() * (q.abs() + off) / gain + means
        else:
            y_hat = q / gain + means
        return {"y_hat": y_hat, "y_lik": y_lik, "z_lik": z_lik}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()


def _frozen_front(name: str) -> nn.Module:
    """The split front end of a detector, as plain frozen modules (weights come with ours)."""
    if name not in ("yolox-nano", "vcodec-det"):  # vcodec-det's front is YOLOX-Nano's, frozen
        raise ConfigError(f"encoder_front {name!r} is not supported; use 'yolox-nano' or 'vcodec-det'")
    from vcodec.detection.yolox import YOLOX

    bb = YOLOX("nano").fuse().backbone.backbone
    front = nn.Sequential(bb.stem, bb.dark2, bb.dark3).eval()
    for p in front.parameters():
        p.requires_grad_(False)
    return front


def bits_of(lik: torch.Tensor) -> torch.Tensor:
    """Total information content in bits of a likelihood tensor."""
    return -torch.log2(lik).sum()


def gain_grid_log(lo: float, hi: float, levels: int) -> list[float]:
    """Geometric gains from lo to hi (used to initialise the levels)."""
    return [float(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (levels - 1)))
            for i in range(levels)]
