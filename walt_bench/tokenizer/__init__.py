"""walt_bench.tokenizer: the causal 3D CNN autoencoder of W.A.L.T §4.1, its GAN training, encode and eval.

    from walt_bench.tokenizer.model import CausalAutoencoder   # .encode(video (B,T,3,H,W)) -> z (B,t,c,h,w); .decode(z)
    from walt_bench.tokenizer.build import load_tokenizer      # the trained autoencoder in eval mode

This file imports nothing, so ``import walt_bench.tokenizer.config`` does not load torch.
"""
