"""walt_bench.engine."""
