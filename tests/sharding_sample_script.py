"""Run by tests/test_sharding_sample.py under ``python -m torch.distributed.run --nproc_per_node 2``.

Samples 5 clips (seed 5, batch 2) with a seeded stand-in tokenizer, as the test's single process does, and
writes each rank's returned record beside the samples folder.
Usage: sharding_sample_script.py SPEC CKPT OUT_DIR [k=v ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from walt_bench.diffusion import sample as sample_mod
from walt_bench.engine.distributed import shutdown_distributed
from walt_bench.spec import load_spec
from walt_bench.tokenizer.model import CausalAutoencoder


def untrained_tokenizer(s, provenance, device):
    torch.manual_seed(0)
    return CausalAutoencoder(s.tokenizer).eval(), "stand-in.pt"


def main() -> None:
    spec_file, ckpt, out, *over = sys.argv[1:]
    torch.set_num_threads(1)
    sample_mod.trained_tokenizer = untrained_tokenizer
    spec = load_spec(spec_file, over)
    try:
        record = sample_mod.run_sample(spec, ckpt, 5, out, seed=5, batch_size=2, progress=False)
        rank = torch.distributed.get_rank()
    finally:
        shutdown_distributed()
    (Path(out).parent / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
