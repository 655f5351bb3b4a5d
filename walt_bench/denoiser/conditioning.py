"""Conditioning of W.A.L.T (§4.3): embeddings of t, class and noise level, AdaLN and AdaLN-LoRA (Eq. 3).

Conditioning vectors have shape ``(B, Tc, D)``: ``Tc = 1`` for per-sample conditioning and ``Tc = T``
for per-frame conditioning (a stack of independent images, each with its own t and label). Modulation
is applied per frame: the tokens of frame ``i`` use row ``i`` (or row 0 when ``Tc = 1``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation ``x * (1 + scale) + shift`` per frame (DiT).

    x (B, N, D) with N = T * S tokens in (t, s) order; shift, scale (B, Tc, D) with Tc in {1, T}.
    """
    b, n, d = x.shape
    tc = shift.shape[1]
    x = x.view(b, tc, n // tc, d)
    return (x * (1 + scale[:, :, None]) + shift[:, :, None]).view(b, n, d)


def gate(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Residual gate ``alpha * x`` per frame; x (B, N, D), alpha (B, Tc, D)."""
    b, n, d = x.shape
    tc = alpha.shape[1]
    return (x.view(b, tc, n // tc, d) * alpha[:, :, None]).view(b, n, d)


# ---------------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of a diffusion time t in [0, 1], scaled by 1000 (the discrete-step range). (..., dim)"""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """t (B,) or (B, T) -> (B, 1|T, D): sinusoidal features then a 2-layer MLP (DiT).

    Also used for the super-resolution noise-augmentation level t_sr (§4.5).
    """

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t[:, None] if t.dim() == 1 else t
        return self.mlp(timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class label (B,) or (B, T) -> (B, 1|T, D); index ``num_classes`` is the null class (guidance)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        labels = labels[:, None] if labels.dim() == 1 else labels
        return self.table(labels)


# ---------------------------------------------------------------------------------------------------
# AdaLN and AdaLN-LoRA
# ---------------------------------------------------------------------------------------------------
def adaln_lora(shared: torch.Tensor, cond: torch.Tensor, down: nn.Linear, up: nn.Linear) -> torch.Tensor:
    """Eq. 3: ``A^i = A^1 + W_b^i W_a^i (c + t)``, the layer's conditioning parameters.

    shared: A^1 = MLP(c + t) (B, Tc, 6D), computed once for all layers; cond: SiLU(c + t) (B, Tc, D);
    ``down`` (D -> r) and ``up`` (r -> 6D) are the layer's rank-r factors. Returns (B, Tc, 6D) =
    concat(shift1, scale1, gate1, shift2, scale2, gate2).

    The branch reads SiLU(c + t), the input of the shared MLP's linear layer: as in LoRA [41], a layer's
    regressor is that linear layer with a low-rank update, A^i = (W + W_b^i W_a^i) SiLU(c + t); Eq. 3 writes
    the branch's input as c + t, the same shorthand it uses for MLP(c + t).
    """
    return shared + up(down(cond))


class SharedAdaLN(nn.Module):
    """A^1 = MLP(c + t) (Eq. 3): one SiLU + Linear(D, 6D) shared by all layers, zero-initialised (DiT)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, cond_act: torch.Tensor) -> torch.Tensor:
        return self.linear(cond_act)


class LayerAdaLN(nn.Module):
    """A layer's conditioning parameters: a rank-r branch on the shared MLP (AdaLN-LoRA, Eq. 3) or, with
    ``rank=None``, a separate Linear(D, 6D) per layer (Table 4). Output layers are zero-initialised, so
    every layer starts as the identity (DiT's adaLN-Zero)."""

    def __init__(self, dim: int, rank: int | None):
        super().__init__()
        self.rank = rank
        if rank is None:
            self.linear = nn.Linear(dim, 6 * dim)
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        else:
            self.down = nn.Linear(dim, rank, bias=False)
            self.up = nn.Linear(rank, 6 * dim, bias=False)
            nn.init.zeros_(self.up.weight)  # LoRA: B = 0, so A^i = A^1 at initialisation

    def forward(self, cond_act: torch.Tensor, shared: torch.Tensor | None) -> torch.Tensor:
        if self.rank is None:
            return self.linear(cond_act)
        return adaln_lora(shared, cond_act, self.down, self.up)
