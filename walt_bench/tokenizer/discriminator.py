"""3D StyleGAN-style discriminator of MAGVIT (used by MAGVIT-v2 and, through it, W.A.L.T's tokenizer).

Residual blocks with blur-pool downsampling (low-pass [1, 2, 1] filter in every axis, then stride 2; time is
downsampled only while more than one frame is left, so images pass through the same weights), leaky ReLU 0.2,
then the mean over time, a dense layer and one logit per clip::

    video (B, T, 3, H, W) -> (B, C0, T, H, W) -> blocks (each /2 in space, /2 in time while T > 1)
        -> mean over time -> flatten -> Linear -> leaky -> Linear -> logits (B,)

The discriminator sees the whole clip, so it is not causal (it need not be).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class BlurPool3d(nn.Module):
    """Anti-aliased downsampling: depthwise [1, 2, 1]^3 / 64 blur, then stride 2 in space (and time if T > 1)."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = k[:, None, None] * k[None, :, None] * k[None, None, :]
        kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3, 3).contiguous()
        self.register_buffer("kernel", kernel, persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride_t = 2 if x.shape[2] > 1 else 1
        x = F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate")
        return F.conv3d(x, self.kernel, stride=(stride_t, 2, 2), groups=self.channels)


class DiscriminatorBlock(nn.Module):
    """``conv3 -> leaky -> blurpool -> conv1 -> leaky`` plus a ``blurpool -> conv1`` skip, scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.pool = BlurPool3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 1)
        self.skip_pool = BlurPool3d(in_channels)
        self.skip = nn.Conv3d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _leaky(self.conv2(self.pool(_leaky(self.conv1(x)))))
        return (h + self.skip(self.skip_pool(x))) / 2**0.5


class StyleGANDiscriminator3D(nn.Module):
    """Clip-level discriminator; ``forward(video (B, T, 3, H, W)) -> logits (B,)``.

    ``size = (H, W)`` fixes the dense layer's input; each of ``len(multipliers)`` blocks halves H and W.
    """

    def __init__(
        self, size: tuple[int, int], channels: int = 128, multipliers: tuple[int, ...] = (2, 4, 4, 4, 4)
    ):
        super().__init__()
        h, w = size
        n = len(multipliers)
        if h % 2**n or w % 2**n:
            raise ValueError(f"discriminator input {h}x{w} is not divisible by 2**{n} ({n} blocks)")
        self.conv_in = nn.Conv3d(3, channels, 3, padding=1)
        blocks, ch = [], channels
        for m in multipliers:
            blocks.append(DiscriminatorBlock(ch, channels * m))
            ch = channels * m
        self.blocks = nn.Sequential(*blocks)
        self.conv_out = nn.Conv3d(ch, ch, 3, padding=1)
        self.fc = nn.Linear(ch * (h // 2**n) * (w // 2**n), ch)
        self.logit = nn.Linear(ch, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = rearrange(video, "b t c h w -> b c t h w")
        x = _leaky(self.conv_in(x))
        x = self.blocks(x)
        x = _leaky(self.conv_out(x)).mean(dim=2)  # (B, C, h, w): mean over the remaining frames
        x = _leaky(self.fc(x.flatten(1)))
        return self.logit(x).squeeze(1)
