"""walt_bench.bench."""
