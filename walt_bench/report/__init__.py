"""walt_bench.report."""
