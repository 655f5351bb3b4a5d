"""Spec section ``model``: the W.A.L.T denoiser (§4.2-4.3, Tables 3, 4, 8).

Geometry (depth, hidden size, heads, MLP ratio) comes from the size registry in ``sizes.py`` unless a
field overrides it. ``depth`` counts *layers* (one attention + one MLP each, alternating spatial and
spatiotemporal), as DiT's ``depth`` does: W.A.L.T-L has 24 layers = 12 S/ST blocks. This reading is
the one that reproduces the paper's parameter counts (see ``experiments/models/README.md``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from walt_bench.config import PositiveFloat, PositiveInt, Section

Window = tuple[PositiveInt, PositiveInt, PositiveInt]
SizeName = Literal["tiny", "S", "B", "L", "XL", "t2v-base", "t2v-sr1", "t2v-sr2"]


def effective_window(window: Window, grid: Window) -> Window:
    """``window`` clipped to the token ``grid`` (t, h, w): a window longer than an axis covers the whole axis
    (e.g. the time axis of images, t = 1). The one definition the spec checks and the attention layers use."""
    return tuple(min(w, g) for w, g in zip(window, grid))  # type: ignore[return-value]


def tiles(window: Window, grid: Window) -> bool:
    """Whether the effective window divides the grid along every axis."""
    return all(g % w == 0 for w, g in zip(effective_window(window, grid), grid))


class DenoiserConfig(Section):
    # --- geometry ------------------------------------------------------------------------------------
    size: SizeName = Field(
        "L",
        description="Named size from the registry (walt_bench/denoiser/sizes.py); Table 3 ablations use L.",
    )
    depth: PositiveInt | None = Field(
        None,
        description="Layers (attention + MLP each), alternating spatial / spatiotemporal, so it must be even; "
        "L = 24 (Table 8). None = the size's.",
    )
    hidden_size: PositiveInt | None = Field(None, description="d_model; None = the size's (L: 1024).")
    num_heads: PositiveInt | None = Field(
        None, description="Attention heads; None = the size's (16, Table 8)."
    )
    mlp_ratio: PositiveFloat | None = Field(
        None,
        description="MLP width / d_model; None = the size's (4, as DiT; the T2V base uses 4.5 = 9216/2048, "
        "our reading of Table 8's '9216').",
    )
    patch_size: PositiveInt = Field(
        1, description="p: patches of p x p latent pixels per frame (Table 3a: 1)."
    )
    # --- attention -----------------------------------------------------------------------------------
    spatial_window: Window | None = Field(
        None, description="Spatial window (1, h, w) in patch tokens; None = the whole latent frame (§4.2)."
    )
    st_window: Window | Literal["full"] = Field(
        (5, 8, 8),
        description="Spatiotemporal window (t, h, w) in patch tokens (Table 3b: 5x8x8), or 'full' "
        "self-attention over all tokens of a sample.",
    )
    qk_norm: bool = Field(True, description="Query-key normalisation per head (Dehghani et al.; Table 3e).")
    qk_norm_type: Literal["layernorm", "rmsnorm"] = Field(
        "layernorm", description="Norm used by qk_norm. Paper cites ViT-22B, which uses LayerNorm."
    )
    rel_pos_bias: bool = Field(
        True, description="Swin-style relative position bias inside each window, per layer and head (§4.2)."
    )
    # --- conditioning --------------------------------------------------------------------------------
    adaln: Literal["lora", "separate"] = Field(
        "lora", description="AdaLN-LoRA (Eq. 3) or a separate AdaLN MLP per layer (Table 4)."
    )
    lora_rank: PositiveInt = Field(2, description="r of AdaLN-LoRA (Table 3d, Table 8: 2).")
    self_condition: bool = Field(
        True, description="Input channels for the self-conditioning estimate (§4.3; zeros when absent)."
    )
    frame_condition: bool = Field(
        False, description="Input channels for c_fp = concat(m * z0, m) (§4.4; zeros when absent)."
    )
    lowres_condition: bool = Field(
        False,
        description="Super-resolution stage (§4.5): a low-resolution latent (h/2, w/2) upsampled by a learned "
        "depth-to-space convolution is concatenated to the input, and the noise-augmentation level t_sr "
        "is embedded and added to c + t.",
    )
    text_dim: PositiveInt | None = Field(
        None, description="Width of the text-encoder embeddings (T5-XL: 2048); None = no cross-attention."
    )
    cross_attention: Literal["spatial", "all"] = Field(
        "spatial",
        description="Which layers get text cross-attention (§4.3): 'spatial' (SW only; joint image-video "
        "training) or 'all' (SW and STW; video-only training).",
    )
