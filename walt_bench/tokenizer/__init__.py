"""walt_bench.tokenizer: the causal 3D CNN autoencoder of W.A.L.T §4.1, its GAN training, encode and eval.

Public API (imported lazily, so ``import walt_bench.tokenizer`` does not load torch)::

    CausalAutoencoder(cfg: TokenizerConfig)        .encode(video (B,T,3,H,W)) -> z (B,t,c,h,w); .decode(z)
    load_tokenizer(spec, checkpoint=None)          the trained autoencoder in eval mode (CheckpointError if none)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["CausalAutoencoder", "load_tokenizer"]

if TYPE_CHECKING:
    from walt_bench.tokenizer.build import load_tokenizer
    from walt_bench.tokenizer.model import CausalAutoencoder


def __getattr__(name: str):
    if name == "CausalAutoencoder":
        from walt_bench.tokenizer.model import CausalAutoencoder

        return CausalAutoencoder
    if name == "load_tokenizer":
        from walt_bench.tokenizer.build import load_tokenizer

        return load_tokenizer
    raise AttributeError(f"module 'walt_bench.tokenizer' has no attribute {name!r}")
