"""walt_bench.data."""
