"""Building blocks of the causal 3D CNN autoencoder (§4.1, after MAGVIT-v2).

All modules here work on ``(B, C, T, H, W)`` (PyTorch's Conv3d layout); the model converts from and to the
project's pixel layout ``(B, T, C, H, W)`` at its boundary.

Causality, the property everything rests on: output frame ``i`` of every module depends only on input frames
``<= i``. Convolutions pad ``k_t - 1`` frames *before* the clip (never after); normalisation statistics are
taken per frame (a GroupNorm over ``(C/G, T, H, W)`` would leak future frames into the past); temporal
downsampling keeps the first frame alone (``1 + T -> 1 + T/2``); temporal depth-to-space drops the extra
leading frames so the first frame stays single (``1 + t -> 1 + 2t``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class CausalConv3d(nn.Module):
    """3D convolution that sees only the current and the ``k_t - 1`` previous frames.

    Time is padded with ``k_t - 1`` frames in front (copies of the first frame, or zeros); space is padded
    ``k // 2`` on each side (zeros). With ``stride_t = 2`` the output has ``1 + (T - 1) // 2`` frames and output
    frame 0 depends on input frame 0 only: ``(B, C, 1+T, H, W) -> (B, C', 1+T/2, H/s, W/s)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: tuple[int, int, int] = (1, 1, 1),
        padding_mode: str = "replicate",
    ):
        super().__init__()
        if padding_mode not in ("replicate", "zeros"):
            raise ValueError(f"padding_mode must be 'replicate' or 'zeros', got {padding_mode!r}")
        self.time_pad = kernel_size - 1
        self.space_pad = kernel_size // 2
        self.padding_mode = padding_mode
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1. causal time padding: k_t - 1 frames before the clip, none after
        if self.time_pad:
            if self.padding_mode == "replicate":
                front = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
            else:
                front = x.new_zeros(x.shape[0], x.shape[1], self.time_pad, *x.shape[3:])
            x = torch.cat([front, x], dim=2)
        # 2. symmetric zero padding in space
        p = self.space_pad
        if p:
            x = F.pad(x, (p, p, p, p, 0, 0))
        return self.conv(x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame: ``(B, C, T, H, W)`` normalised over ``(C/G, H, W)`` of each frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


def broadcast_latent(z: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Resize latents ``(B, c, t, h, w)`` to a feature map of ``size = (T, H, W)`` without breaking causality.

    Time: frame 0 takes latent 0 and frame ``i >= 1`` takes latent ``ceil(i / r)`` with ``r = (T-1)/(t-1)``,
    i.e. the latent frame that encodes it (never a later one). Space: nearest-neighbour upsampling.
    """
    t_out, h_out, w_out = size
    t_in = z.shape[2]
    if t_in > 1 and t_out > 1:
        r = (t_out - 1) // (t_in - 1)
        idx = (torch.arange(t_out, device=z.device) + r - 1) // r  # ceil(i / r)
        z = z.index_select(2, idx)
    elif t_out != t_in:
        z = z[:, :, :1].expand(-1, -1, t_out, -1, -1)
    if z.shape[-2:] != (h_out, w_out):
        b = z.shape[0]
        z = F.interpolate(rearrange(z, "b c t h w -> (b t) c h w"), size=(h_out, w_out), mode="nearest")
        z = rearrange(z, "(b t) c h w -> b c t h w", b=b)
    return z


class AdaptiveGroupNorm(nn.Module):
    """MAGVIT-v2's adaptive group norm: per-frame GroupNorm whose scale and shift come from the latent.

    ``y = GN(x) * (1 + gamma(z)) + beta(z)`` with ``gamma, beta`` from a 1x1x1 convolution of the latent resized
    to ``x``'s grid (:func:`broadcast_latent`). The projection is zero-initialised, so training starts from a
    plain GroupNorm.
    """

    def __init__(self, channels: int, latent_channels: int, num_groups: int):
        super().__init__()
        self.norm = FrameGroupNorm(num_groups, channels, affine=True)
        self.proj = nn.Conv3d(latent_channels, 2 * channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(broadcast_latent(z, tuple(x.shape[2:]))).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class ResBlock(nn.Module):
    """Residual block: (norm, swish, causal conv) x 2 plus a skip (1x1x1 conv when the width changes).

    ``latent_channels`` switches the norms to :class:`AdaptiveGroupNorm` (decoder); then ``forward`` takes ``z``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        num_groups: int,
        padding_mode: str,
        latent_channels: int | None = None,
    ):
        super().__init__()
        self.adaptive = latent_channels is not None
        if self.adaptive:
            self.norm1 = AdaptiveGroupNorm(in_channels, latent_channels, num_groups)
            self.norm2 = AdaptiveGroupNorm(out_channels, latent_channels, num_groups)
        else:
            self.norm1 = FrameGroupNorm(num_groups, in_channels)
            self.norm2 = FrameGroupNorm(num_groups, out_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, padding_mode=padding_mode)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, padding_mode=padding_mode)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def _norm(self, norm: nn.Module, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return norm(x, z) if self.adaptive else norm(x)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self._norm(self.norm1, x, z)))
        h = self.conv2(F.silu(self._norm(self.norm2, h, z)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Strided causal 3x3x3 convolution: space ``/2``; time ``1+T -> 1+T/2`` when ``temporal`` (first frame alone)."""

    def __init__(self, in_channels: int, out_channels: int, *, temporal: bool, padding_mode: str):
        super().__init__()
        self.temporal = temporal
        stride = (2 if temporal else 1, 2, 2)
        self.conv = CausalConv3d(in_channels, out_channels, 3, stride=stride, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DepthToSpaceUpsample(nn.Module):
    """Causal conv to ``C * r_t * 2 * 2`` channels, then depth-to-space: ``(1+t, h, w) -> (1+r_t*t, 2h, 2w)``.

    Temporal depth-to-space turns ``1 + t`` frames into ``r_t (1 + t)``; the first ``r_t - 1`` of them are
    dropped so that the first frame stays single (5 -> 9 -> 17 for two temporal levels).
    """

    def __init__(self, in_channels: int, out_channels: int, *, temporal: bool, padding_mode: str):
        super().__init__()
        self.r_t = 2 if temporal else 1
        self.conv = CausalConv3d(in_channels, out_channels * self.r_t * 4, 3, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = rearrange(
            self.conv(x), "b (c rt rh rw) t h w -> b c (t rt) (h rh) (w rw)", rt=self.r_t, rh=2, rw=2
        )
        return y[:, :, self.r_t - 1 :]
