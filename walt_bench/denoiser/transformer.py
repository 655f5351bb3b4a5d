"""One W.A.L.T layer (window self-attention [+ text cross-attention] + MLP, AdaLN-modulated) and the
final layer. A block (Fig. 2) is a spatial layer followed by a spatiotemporal layer; the model stacks
layers alternately (even index: spatial, odd: spatiotemporal).
"""

from __future__ import annotations

import torch
from torch import nn

from walt_bench.denoiser.attention import Grid, WindowCrossAttention, WindowSelfAttention
from walt_bench.denoiser.conditioning import LayerAdaLN, gate, modulate


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WALTLayer(nn.Module):
    """x = x + a1 * Attn(mod(LN(x), b1, g1)); [x = x + XAttn(LN(x), text)]; x = x + a2 * MLP(mod(LN(x), b2, g2)).

    ``kind`` is "spatial" (windows within one latent frame) or "spatiotemporal" (3D windows; identity
    attention for image samples). (gamma, beta, alpha) come from AdaLN-LoRA or a separate AdaLN (§4.3).
    The cross-attention sub-layer has its own affine LayerNorm and a zero-initialised output projection,
    so a text model starts as the unconditional one (the paper is silent on its normalisation).
    """

    def __init__(
        self,
        kind: str,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        table_window: Grid,
        *,
        qk_norm: bool,
        qk_norm_type: str,
        rel_pos_bias: bool,
        lora_rank: int | None,
        cross_attention: bool,
    ):
        super().__init__()
        self.kind = kind
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = WindowSelfAttention(
            dim,
            num_heads,
            table_window,
            qk_norm=qk_norm,
            qk_norm_type=qk_norm_type,
            rel_pos_bias=rel_pos_bias,
            identity_for_images=kind == "spatiotemporal",
        )
        self.cross_norm = nn.LayerNorm(dim, eps=1e-6) if cross_attention else None
        self.cross_attn = (
            WindowCrossAttention(dim, num_heads, qk_norm=qk_norm, qk_norm_type=qk_norm_type)
            if cross_attention
            else None
        )
        if self.cross_attn is not None:
            nn.init.zeros_(self.cross_attn.proj.weight)
            nn.init.zeros_(self.cross_attn.proj.bias)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden)
        self.adaln = LayerAdaLN(dim, lora_rank)

    def forward(
        self,
        x: torch.Tensor,
        grid: Grid,
        window: Grid,
        cond_act: torch.Tensor,
        shared: torch.Tensor | None,
        is_image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D); cond_act = SiLU(c + t) (B, Tc, D); shared = A^1 (B, Tc, 6D) or None."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(cond_act, shared).chunk(6, dim=-1)
        x = x + gate(self.attn(modulate(self.norm1(x), shift1, scale1), grid, window, is_image), gate1)
        if self.cross_attn is not None and text is not None:
            x = x + self.cross_attn(self.cross_norm(x), grid, window, text, text_mask)
        return x + gate(self.mlp(modulate(self.norm2(x), shift2, scale2)), gate2)


class FinalLayer(nn.Module):
    """LN, AdaLN shift/scale from SiLU(c + t), Linear(D, p*p*c); all zero-initialised (DiT)."""

    def __init__(self, dim: int, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaln = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out_features)
        for layer in (self.adaln, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, cond_act: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaln(cond_act).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))
