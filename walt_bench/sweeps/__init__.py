"""walt_bench.sweeps."""
