"""Video super-resolution stages (§4.5): noise conditioning augmentation and the base -> SR1 -> SR2 chain.

An SR stage is a W.A.L.T denoiser with ``model.lowres_condition``: it takes the low-resolution latent
(B, T, c, h/2, w/2) as ``lowres`` (upsampled inside the model by a learned depth-to-space convolution)
and the augmentation time t_sr as ``noise_aug`` (fed to AdaLN-LoRA). Training draws
t_sr ~ U(0, t_max_noise) and noises the ground-truth low-res latent with γ(t_sr) (Eq. 1, Ho et al.
"Cascaded Diffusion Models"); sampling uses one fixed level ``diffusion.sample_noise_aug`` on the latent
produced by the previous stage, which bridges the train/test gap of teacher forcing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

from walt_bench.diffusion.objective import q_sample
from walt_bench.diffusion.sampler import Generators, randn


def sample_t_sr(
    batch: int, t_max_noise: float, *, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """t_sr ~ U(0, t_max_noise) (§4.5), (B,) float."""
    return torch.rand(batch, device=device, generator=generator) * t_max_noise


def noise_augment(
    lowres: torch.Tensor, t_sr: torch.Tensor, schedule, *, generator: Generators = None
) -> torch.Tensor:
    """Noise the low-res latent (B, T, c, h, w) to level t_sr (B,) with γ(t_sr) as in Eq. 1 (``generator``: one,
    or one per sample, as :func:`walt_bench.diffusion.sampler.randn`)."""
    noise = randn(lowres.shape, device=lowres.device, generator=generator, dtype=lowres.dtype)
    return q_sample(lowres, schedule.gamma(t_sr), noise)


def downsample_video(video: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Pixels (B, T, 3, H, W) -> (B, T, 3, H/f, W/f) by area averaging: the low-res input of an SR stage."""
    b = video.shape[0]
    frames = rearrange(video, "b t c h w -> (b t) c h w")
    frames = F.avg_pool2d(frames, kernel_size=factor)
    return rearrange(frames, "(b t) c h w -> b t c h w", b=b)


def run_cascade(
    base: Callable[[], torch.Tensor],
    sr_stages: Sequence[Callable[[torch.Tensor], torch.Tensor]],
) -> list[torch.Tensor]:
    """Chain the stages: ``base()`` -> latents, then each SR stage maps the previous stage's latents to its own.

    Each callable is a fully configured stage sampler (see :func:`walt_bench.diffusion.generate.sample_latents`
    with ``lowres=...``); the list of every stage's output (tokenizer-space latents) is returned, coarse to fine.
    """
    outputs = [base()]
    for stage in sr_stages:
        outputs.append(stage(outputs[-1]))
    return outputs
