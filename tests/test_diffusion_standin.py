"""A tiny stand-in denoiser with the WALT forward signature (shared contract), used by the diffusion tests.

It is a small 3D conv net whose input is the channel concatenation of the optional conditioning inputs,
modulated by embeddings of t, the class label and the SR noise level, so every input changes the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class TinyDenoiser(nn.Module):
    def __init__(
        self,
        channels: int = 4,
        *,
        num_classes: int = 0,
        self_condition: bool = True,
        frame_condition: bool = False,
        lowres_condition: bool = False,
        width: int = 32,
    ):
        super().__init__()
        self.self_condition, self.frame_condition, self.lowres_condition = (
            self_condition,
            frame_condition,
            lowres_condition,
        )
        in_ch = channels * (1 + self_condition + lowres_condition) + (channels + 1) * frame_condition
        self.inp = nn.Conv3d(in_ch, width, 3, padding=1)
        self.mid = nn.Conv3d(width, width, 3, padding=1)
        self.out = nn.Conv3d(width, channels, 3, padding=1)
        self.t_emb = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, 2 * width))
        self.label_emb = nn.Embedding(num_classes + 1, 2 * width) if num_classes else None
        self.calls: list[dict] = []

    def forward(
        self,
        z_t,
        t,
        *,
        class_labels=None,
        self_cond=None,
        frame_cond=None,
        lowres=None,
        noise_aug=None,
        text=None,
        text_mask=None,
        is_image=None,
    ):
        self.calls.append(
            {
                "self_cond": self_cond,
                "frame_cond": frame_cond,
                "lowres": lowres,
                "noise_aug": noise_aug,
                "labels": class_labels,
                "t": t,
            }
        )
        b, f = z_t.shape[:2]
        parts = [z_t]
        if self.self_condition:
            parts.append(self_cond if self_cond is not None else torch.zeros_like(z_t))
        if self.frame_condition:
            parts.append(frame_cond)
        if self.lowres_condition:
            up = F.interpolate(rearrange(lowres, "b t c h w -> (b t) c h w"), scale_factor=2.0)
            parts.append(rearrange(up, "(b t) c h w -> b t c h w", b=b))
        x = rearrange(torch.cat(parts, dim=2), "b t c h w -> b c t h w")
        t = t if t.dim() == 2 else t[:, None].expand(b, f)
        t_mean = t.mean(dim=1, keepdim=True)
        feats = torch.cat([t_mean, torch.sin(3 * t_mean), torch.cos(3 * t_mean)], dim=1)
        emb = self.t_emb(feats)
        if noise_aug is not None:
            emb = emb + self.t_emb(torch.stack([noise_aug, noise_aug, noise_aug], dim=1))
        if self.label_emb is not None and class_labels is not None:
            labels = class_labels if class_labels.dim() == 1 else class_labels[:, 0]
            emb = emb + self.label_emb(labels)
        scale, shift = emb[:, :, None, None, None].chunk(2, dim=1)
        h = F.silu(self.inp(x)) * (1 + scale) + shift
        h = h + F.silu(self.mid(h))
        return rearrange(self.out(h), "b c t h w -> b t c h w")


def test_standin_accepts_the_contract_signature():
    model = TinyDenoiser(4, num_classes=3, frame_condition=True, lowres_condition=True)
    z = torch.randn(2, 3, 4, 8, 8)
    out = model(
        z,
        torch.rand(2),
        class_labels=torch.tensor([0, 3]),
        self_cond=torch.zeros_like(z),
        frame_cond=torch.zeros(2, 3, 5, 8, 8),
        lowres=torch.randn(2, 3, 4, 4, 4),
        noise_aug=torch.rand(2),
    )
    assert out.shape == z.shape
