"""Encoder effort "slow": refine the latent of an intra frame before coding it (decoder unchanged).

g_a is an amortised guess of the best latent; a few gradient steps on y itself
lower the frame's own cost under the objective the model was trained for
(``bits + P * gain^2 * lam_f * Df / feat_var``, P the padded pixel count, Df the
mean squared error between T(y_hat) and the detector's split features F(x) of the
uncompressed picture).  The hyperprior (z) is coded from the unrefined y and then
fixed, so the entropy parameters the decoder derives are those the refinement saw.

Rate: -log2 of the probability of the rounded symbol (straight-through rounding,
so the gradient of the discretised Gaussian pulls toward the mean); distortion: T
of the latent quantised the same way, exactly as the decoder will reconstruct it
(offsets included).  Float32 autograd is thread-dependent in its
last bits, so the refined y is rounded to a 1/4096 grid of the quantisation step
before coding: the stream stays identical across thread counts except in the
(practically never seen) case of a value within 2**-12 of a rounding boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RefineSettings", "refine_latent"]

_LOG2 = float(torch.log(torch.tensor(2.0)))


@dataclass(frozen=True)
class RefineSettings:
    steps: int = 10
    lr_steps: float = 0.15  # Adam step size in quantisation steps
    lam_f: float = 8.0  # the training objective's feature weight (model record: loss)
    feat_var: float = 1.0  # the training normaliser of Df (model record: feat_var)


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / 2 ** 0.5)


def refine_latent(y: torch.Tensor, means: torch.Tensor, sigma: torch.Tensor, offset: torch.Tensor,
                  gain: float, T: torch.nn.Module, target: torch.Tensor, pixels: int,
                  settings: RefineSettings) -> tuple[torch.Tensor, dict[str, float]]:
    """Refined y (float64, on a 1/4096-step grid) and the objective before/after (for reports).

    ``means``/``sigma``/``offset``: the frame's entropy parameters (symbol units for sigma and
    offset); ``target``: F(x), the features T(y_hat) should reproduce.
    """
    means32, sigma32, off32 = means.float(), sigma.float(), offset.float()
    weight = pixels * gain * gain * settings.lam_f / max(settings.feat_var, 1e-12)
    target = target.float()

    def objective(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = (v - means32) * gain
        s = r + (torch.round(r) - r).detach()  # straight-through rounding: the symbol coded
        # the coded symbol's probability (its gradient pulls toward the mean); the likelihood of
        # the interval around the continuous r would not see a residual crossing +-0.5
        p = _normal_cdf((0.5 - s.abs()) / sigma32) - _normal_cdf((-0.5 - s.abs()) / sigma32)
        bits = -torch.log(p.clamp_min(2.0 ** -16)).sum() / _LOG2
        recon = s + torch.sign(s.detach()) * off32  # sign(0) = 0: zero symbols get no offset
        d = (T(recon / gain + means32) - target).pow(2).mean()
        return bits + weight * d, bits, d

    v = y.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=settings.lr_steps / gain)
    with torch.enable_grad():
        start = tuple(term.detach() for term in objective(v))
        best, best_cost = v.detach().clone(), float(start[0])
        for _ in range(settings.steps):
            opt.zero_grad()
            cost = objective(v)[0]
            cost.backward()
            opt.step()
            with torch.no_grad():
                now = float(objective(v)[0])
            if now < best_cost:
                best, best_cost = v.detach().clone(), now
    grid = 4096.0 * gain
    refined = torch.round(best.double() * grid) / grid
    with torch.no_grad():
        end = objective(refined.float())
    return refined, {"cost_before": float(start[0]), "cost_after": float(end[0]),
                     "bits_before": float(start[1]), "bits_after": float(end[1]),
                     "df_before": float(start[2]), "df_after": float(end[2])}
