"""Size registry (DiT style): named geometries that double as ``model.size`` choices.

``depth`` counts layers (attention + MLP), alternating spatial (S) and spatiotemporal (ST); a W.A.L.T
block is one S and one ST layer. Sizes S/B/L/XL follow DiT's geometry (the paper: "L = 24 x 1024 x 16,
XL = 28 x 1152 x 16"); with c = 8, p = 1, latent 5x16x16 and 101 classes they give the paper's
parameter counts (313M for L with r = 2, 460M for XL with r = 2; see ``experiments/models/README.md``).

Text-to-video cascade (§5.3, Table 8):

- ``t2v-base``: 52 layers, 16 heads. Table 8 prints "hidden size 9216", which cannot give the stated
  3B parameters (52 x 12 x 9216^2 = 53B). We read 9216 as the MLP width: d_model = 2048 and MLP ratio
  4.5 (= 9216 / 2048); with T5-XL text (2048-d) and SW cross-attention this is ~3.3B parameters
  (with MLP ratio 4 it would be ~3.1B; both round to "3B").
- ``t2v-sr1``: 40 layers x 1408, p = 2, text cross-attention in every layer: ~1.29B ("1.3B").
- ``t2v-sr2``: 24 layers x 1024 (an L), p = 2 (main text; Table 8 says 4), cross-attention in every
  layer: ~418M ("419M").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    depth: int  # layers, alternating S / ST
    hidden_size: int
    num_heads: int
    mlp_ratio: float = 4.0


SIZES: dict[str, Size] = {
    "tiny": Size(depth=2, hidden_size=32, num_heads=4),  # tests and the smoke scale
    "S": Size(depth=12, hidden_size=384, num_heads=6),
    "B": Size(depth=12, hidden_size=768, num_heads=12),
    "L": Size(depth=24, hidden_size=1024, num_heads=16),
    "XL": Size(depth=28, hidden_size=1152, num_heads=16),
    "t2v-base": Size(depth=52, hidden_size=2048, num_heads=16, mlp_ratio=4.5),
    "t2v-sr1": Size(depth=40, hidden_size=1408, num_heads=16),
    "t2v-sr2": Size(depth=24, hidden_size=1024, num_heads=16),
}


def resolve_size(cfg) -> Size:
    """The geometry of a :class:`DenoiserConfig`: the registry entry with the config's overrides applied."""
    base = SIZES[cfg.size]
    return Size(
        depth=cfg.depth if cfg.depth is not None else base.depth,
        hidden_size=cfg.hidden_size if cfg.hidden_size is not None else base.hidden_size,
        num_heads=cfg.num_heads if cfg.num_heads is not None else base.num_heads,
        mlp_ratio=cfg.mlp_ratio if cfg.mlp_ratio is not None else base.mlp_ratio,
    )
