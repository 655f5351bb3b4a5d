"""walt_bench.evaluation."""
