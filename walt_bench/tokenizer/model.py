"""The causal 3D CNN autoencoder of W.A.L.T §4.1 (architecture after MAGVIT-v2, continuous latents).

One set of weights compresses images and videos into a shared latent space; the first frame is encoded
independently, so a ``(1+T) x H x W`` clip becomes ``(1+t) x h x w x c`` latents and an image one latent frame::

    video (B, 17, 3, 128, 128) --encode--> z (B, 5, 8, 16, 16) --decode--> (B, 17, 3, 128, 128)   # f_s=8, f_t=4
    image (B,  1, 3, 128, 128) --encode--> z (B, 1, 8, 16, 16)

Encoder: causal conv in; per level ``num_res_blocks`` residual blocks at ``channels * multiplier``; a strided
causal convolution between levels (space on every one, time on the last ``log2 f_t``); two middle blocks;
per-frame GroupNorm, swish, causal conv to ``c`` (or ``2c`` for the KL posterior). The decoder mirrors it with
depth-to-space upsampling and adaptive group norms conditioned on the latent.

Usage::

    model = CausalAutoencoder(spec.tokenizer)
    z = model.encode(video)        # (B, T, 3, H, W) -> (B, t, c, h, w)
    video_hat = model.decode(z)    # (B, t, c, h, w) -> (B, 1 + f_t (t-1), 3, H, W)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from walt_bench.errors import UserError
from walt_bench.tokenizer.config import TokenizerConfig, geometry_problems
from walt_bench.tokenizer.layers import (
    CausalConv3d,
    DepthToSpaceUpsample,
    Downsample,
    FrameGroupNorm,
    ResBlock,
)


def temporal_levels(cfg: TokenizerConfig) -> int:
    """How many levels downsample time (``log2 f_t``); raises :class:`UserError` when the geometry is inconsistent."""
    problems = geometry_problems(cfg.f_s, cfg.f_t, cfg.channels, cfg.channel_multipliers, cfg.num_groups)
    if problems:
        raise UserError("inconsistent tokenizer geometry:\n  - " + "\n  - ".join(problems))
    return int(math.log2(cfg.f_t))


@dataclass
class Posterior:
    """Encoder output. ``plain``: ``logvar is None`` and ``sample() == mean``; ``kl``: a diagonal Gaussian."""

    mean: torch.Tensor  # (B, t, c, h, w)
    logvar: torch.Tensor | None = None

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.logvar is None:
            return self.mean
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + torch.exp(0.5 * self.logvar) * noise

    def kl(self) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) summed over latent elements, averaged over the batch (0 for plain latents)."""
        if self.logvar is None:
            return self.mean.new_zeros(())
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1).mean()


# ---------------------------------------------------------------------------------------------------------
# Encoder and decoder
# ---------------------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """``(B, 3, 1+T, H, W) -> (B, c_out, 1+T/f_t, H/f_s, W/f_s)``."""

    def __init__(self, cfg: TokenizerConfig, out_channels: int):
        super().__init__()
        k_t = temporal_levels(cfg)
        pm, g = cfg.causal_padding, cfg.num_groups
        widths = [cfg.channels * m for m in cfg.channel_multipliers]
        n_down = len(widths) - 1
        self.conv_in = CausalConv3d(3, widths[0], 3, padding_mode=pm)
        self.levels = nn.ModuleList()
        ch = widths[0]
        for i, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, w, num_groups=g, padding_mode=pm))
                ch = w
            level = nn.Module()
            level.blocks = blocks
            if i < n_down:  # time is downsampled on the last k_t downsamplings
                level.down = Downsample(ch, ch, temporal=i >= n_down - k_t, padding_mode=pm)
            self.levels.append(level)
        self.mid = nn.ModuleList([ResBlock(ch, ch, num_groups=g, padding_mode=pm) for _ in range(2)])
        self.norm_out = FrameGroupNorm(g, ch)
        self.conv_out = CausalConv3d(ch, out_channels, 3, padding_mode=pm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.levels:
            for block in level.blocks:
                h = block(h)
            if hasattr(level, "down"):
                h = level.down(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``(B, c, 1+t, h, w) -> (B, 3, 1+f_t t, f_s h, f_s w)`` with adaptive group norms conditioned on ``z``."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        k_t = temporal_levels(cfg)
        pm, g, c = cfg.causal_padding, cfg.num_groups, cfg.latent_channels
        widths = [cfg.channels * m for m in cfg.channel_multipliers]
        ch = widths[-1]
        self.conv_in = CausalConv3d(c, ch, 3, padding_mode=pm)
        self.mid = nn.ModuleList(
            [ResBlock(ch, ch, num_groups=g, padding_mode=pm, latent_channels=c) for _ in range(2)]
        )
        self.levels = nn.ModuleList()
        for j, w in enumerate(reversed(widths)):  # j = 0 is the coarsest level
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, w, num_groups=g, padding_mode=pm, latent_channels=c))
                ch = w
            level = nn.Module()
            level.blocks = blocks
            if j < len(widths) - 1:  # mirror of the encoder: time is upsampled on the first k_t upsamplings
                nxt = widths[len(widths) - 2 - j]
                level.up = DepthToSpaceUpsample(ch, nxt, temporal=j < k_t, padding_mode=pm)
                ch = nxt
            self.levels.append(level)
        self.norm_out = FrameGroupNorm(g, ch)
        self.conv_out = CausalConv3d(ch, 3, 3, padding_mode=pm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h, z)
        for level in self.levels:
            for block in level.blocks:
                h = block(h, z)
            if hasattr(level, "up"):
                h = level.up(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------------------------------------------------
# Autoencoder
# ---------------------------------------------------------------------------------------------------------


class CausalAutoencoder(nn.Module):
    """Causal 3D CNN autoencoder; pixels ``(B, T, 3, H, W)`` in [-1, 1] <-> latents ``(B, t, c, h, w)``."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        temporal_levels(cfg)
        self.cfg = cfg
        self.f_s, self.f_t, self.latent_channels = cfg.f_s, cfg.f_t, cfg.latent_channels
        c_out = 2 * cfg.latent_channels if cfg.latent_kind == "kl" else cfg.latent_channels
        self.encoder = Encoder(cfg, c_out)
        self.decoder = Decoder(cfg)

    def fsdp_units(self) -> list[nn.Module]:
        """What FSDP2 shards as its own unit (``parallel=fsdp``): every stage of the encoder and decoder that
        runs a forward of its own, i.e. each residual block and each down/upsampler (a level is only a
        container, so its hooks would never fire); the root keeps the input/output convolutions and norms."""
        stages = (ResBlock, Downsample, DepthToSpaceUpsample)
        return [m for part in (self.encoder, self.decoder) for m in part.modules() if isinstance(m, stages)]

    def _check_video(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[2] != 3:
            raise UserError(f"expected pixels (B, T, 3, H, W), got shape {tuple(video.shape)}")
        t, h, w = video.shape[1], video.shape[3], video.shape[4]
        if (t - 1) % self.f_t or h % self.f_s or w % self.f_s:
            raise UserError(
                f"clip of {t}x{h}x{w} (TxHxW) does not fit f_t={self.f_t}, f_s={self.f_s}: need T = 1 + "
                f"{self.f_t}k (e.g. {1 + self.f_t * max(1, (t - 1) // self.f_t)}) and H, W multiples of {self.f_s}"
            )

    def posterior(self, video: torch.Tensor) -> Posterior:
        """Encode ``(B, T, 3, H, W)`` into the latent posterior (``mean``/``logvar`` of shape ``(B, t, c, h, w)``)."""
        self._check_video(video)
        h = self.encoder(rearrange(video, "b t c h w -> b c t h w"))
        h = rearrange(h, "b c t h w -> b t c h w")
        if self.cfg.latent_kind == "kl":
            mean, logvar = h.chunk(2, dim=2)
            return Posterior(mean, logvar.clamp(-30.0, 20.0))
        return Posterior(h)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W) -> z (B, t, c, h, w)`` with ``t = 1 + (T-1)/f_t`` (deterministic: the posterior mean)."""
        return self.posterior(video).mean

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, t, c, h, w) -> (B, 1 + f_t (t-1), 3, f_s h, f_s w)``."""
        if z.ndim != 5 or z.shape[2] != self.latent_channels:
            raise UserError(f"expected latents (B, t, {self.latent_channels}, h, w), got {tuple(z.shape)}")
        x = self.decoder(rearrange(z, "b t c h w -> b c t h w"))
        return rearrange(x, "b c t h w -> b t c h w")

    def forward(
        self, video: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Posterior]:
        """Reconstruct ``video``; returns ``(video_hat, posterior)`` (training path: samples the KL posterior)."""
        post = self.posterior(video)
        return self.decode(post.sample(generator)), post


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
