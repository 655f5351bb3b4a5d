"""walt_bench.diffusion."""
