"""walt_bench.tokenizer."""
