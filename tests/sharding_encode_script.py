"""Run by tests/test_sharding_encode.py under ``python -m torch.distributed.run --nproc_per_node 2``.

Encodes the test's split (batch 1) as its single process does and writes each rank's returned manifest
beside the cache. Usage: sharding_encode_script.py SPEC OUT_DIR [k=v ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from walt_bench.engine.distributed import shutdown_distributed
from walt_bench.spec import load_spec
from walt_bench.tokenizer.encode import encode_dataset


def main() -> None:
    spec_file, out, *over = sys.argv[1:]
    torch.set_num_threads(1)
    try:
        manifest = encode_dataset(load_spec(spec_file, over), out=out, batch_size=1, progress=False)
        rank = torch.distributed.get_rank()
    finally:
        shutdown_distributed()
    (Path(out).parent / f"rank{rank}.json").write_text(json.dumps(manifest))


if __name__ == "__main__":
    main()
