"""Spec section ``model``: the W.A.L.T denoiser (§4.2-4.3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from walt_bench.config import PositiveInt, Section

Window = tuple[PositiveInt, PositiveInt, PositiveInt]


class DenoiserConfig(Section):
    size: str = Field("L", description="Named size from the registry (tiny, S, B, L, XL, ...).")
    depth: PositiveInt | None = Field(None, description="Blocks (each a spatial + a spatiotemporal layer); None = the size's.")
    hidden_size: PositiveInt | None = Field(None, description="d_model; None = the size's.")
    num_heads: PositiveInt | None = Field(None, description="Attention heads; None = the size's.")
    patch_size: PositiveInt = Field(1, description="p: patches of p x p latent pixels per frame (Table 3a).")
    spatial_window: Window | None = Field(
        None, description="Spatial window (1, h, w) in patch tokens; None = the whole latent frame (§4.2)."
    )
    st_window: Window | Literal["full"] = Field(
        (5, 8, 8), description="Spatiotemporal window (t, h, w) in patch tokens, or 'full' self-attention (Table 3b)."
    )
    qk_norm: bool = Field(True, description="Query-key normalisation (Table 3e).")
    rel_pos_bias: bool = Field(True, description="Relative position bias inside windows (§4.2).")
    adaln: Literal["lora", "separate"] = Field("lora", description="AdaLN-LoRA (Eq. 3) or a separate AdaLN MLP per layer (Table 4).")
    lora_rank: PositiveInt = Field(2, description="r of AdaLN-LoRA (Table 3d).")
