"""walt_bench.denoiser."""
