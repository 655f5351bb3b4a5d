"""The diffusion equations of §3, one function each, plus latent normalisation (Table 3e).

All functions take γ = γ(t) already broadcast-ready: a tensor of shape (B,) or (B, T) (per-frame times
for image stacks), expanded here to the latent layout (B, T, c, h, w).

    Eq. 1   z_t = sqrt(γ) z_0 + sqrt(1 - γ) ε                      :func:`q_sample`
    §3      v   = sqrt(γ) ε - sqrt(1 - γ) z_0                      :func:`v_target`
            ẑ_0 = sqrt(γ) z_t - sqrt(1 - γ) v̂                      :func:`x0_from_v`
            ε̂   = sqrt(1 - γ) z_t + sqrt(γ) v̂                      :func:`eps_from_v`
    Eq. 2   E ||v - f_θ(z_t; c, t)||²                               :func:`v_loss`

The paper prints v = sqrt(1 - γ) ε - sqrt(γ) x_0, with the two coefficients swapped relative to the
v-prediction it cites (Salimans & Ho 2022, [65]: v = α ε - σ x with α = sqrt(γ), σ = sqrt(1 - γ)). At t = 1
under zero terminal SNR (γ = 0) the printed form gives v = ε = z_t, which says nothing about x_0 (Lin et al.
need v-prediction precisely because the cited v = -x_0 there); we implement the cited definition, for which the pair (z_t, v) is a
rotation of (z_0, ε) by the angle φ with cos φ = sqrt(γ), so the inverse rotation gives ẑ_0 and ε̂ below.
"""

from __future__ import annotations

import torch
from torch import nn


def _expand(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) or (B, T) -> broadcastable against (B, T, c, h, w)."""
    g = g.to(like.dtype)
    while g.dim() < like.dim():
        g = g.unsqueeze(-1)
    return g


def q_sample(z0: torch.Tensor, gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Eq. 1: z_t = sqrt(γ(t)) z_0 + sqrt(1 - γ(t)) ε."""
    g = _expand(gamma, z0)
    return g.sqrt() * z0 + (1.0 - g).sqrt() * noise


def v_target(z0: torch.Tensor, noise: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """§3 (after Eq. 2), v-prediction of Salimans & Ho 2022: v = sqrt(γ) ε - sqrt(1 - γ) z_0.

    See the module docstring for why the coefficients differ from the paper's printed formula.
    """
    g = _expand(gamma, z0)
    return g.sqrt() * noise - (1.0 - g).sqrt() * z0


def x0_from_v(z_t: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """ẑ_0 = sqrt(γ) z_t - sqrt(1 - γ) v̂ (inverse of Eq. 1 + v). At γ = 0 (t = 1, zero SNR) ẑ_0 = -v̂."""
    g = _expand(gamma, z_t)
    return g.sqrt() * z_t - (1.0 - g).sqrt() * v


def eps_from_v(z_t: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """ε̂ = sqrt(1 - γ) z_t + sqrt(γ) v̂ (inverse of Eq. 1 + v)."""
    g = _expand(gamma, z_t)
    return (1.0 - g).sqrt() * z_t + g.sqrt() * v


def v_loss(v_hat: torch.Tensor, v: torch.Tensor, frame_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 2 with the v target: mean squared error over all latent elements.

    ``frame_weight`` (B, T) in {0, 1} excludes frames from the loss (the clean conditioning frames of
    frame prediction, §4.4); the mean is then over the included elements only.
    """
    err = (v_hat.float() - v.float()) ** 2  # (B, T, c, h, w)
    if frame_weight is None:
        return err.mean()
    w = _expand(frame_weight.float(), err).expand_as(err)
    return (err * w).sum() / w.sum().clamp(min=1.0)


class LatentNormalizer(nn.Module):
    """Per-channel latent normalisation z' = (z - mean) / std (§5.2 "we also normalize the latents"; Table 3e).

    The statistics come from the latent cache (``LatentCache.mean/std``) or an estimate over a few encoded
    batches; they are buffers, so they travel with the model's checkpoint. ``enabled=False`` is the identity
    (the "w/o latent norm" ablation).
    """

    def __init__(self, channels: int, enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(-1))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(-1).clamp(min=1e-6))

    def _view(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x.to(z.dtype).view(1, 1, -1, 1, 1)  # (c,) -> b t c h w

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """(B, t, c, h, w) tokenizer latents -> diffusion space."""
        if not self.enabled:
            return z
        return (z - self._view(self.mean, z)) / self._view(self.std, z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Diffusion space -> tokenizer latents for decoding."""
        if not self.enabled:
            return z
        return z * self._view(self.std, z) + self._view(self.mean, z)


def latent_stats(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of latents (B, t, c, h, w) -> ((c,), (c,))."""
    c = latents.shape[2]
    flat = latents.detach().float().transpose(0, 2).reshape(c, -1)
    return flat.mean(dim=1), flat.std(dim=1)
