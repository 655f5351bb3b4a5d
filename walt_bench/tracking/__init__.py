"""walt_bench.tracking."""
