"""Run by tests/test_sharding_stats.py under ``python -m torch.distributed.run --nproc_per_node 2``: each rank
streams its block of a fixed feature matrix into RunningStats, then ``all_merge``. Usage: SCRIPT OUT_DIR"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from walt_bench.engine.distributed import init_distributed, shutdown_distributed
from walt_bench.evaluation.distributed_stats import all_merge, rank_rows
from walt_bench.evaluation.frechet import RunningStats


def features() -> np.ndarray:
    return np.random.default_rng(0).normal(3.0, 2.0, size=(37, 5)) @ np.diag([1.0, 2.0, 0.5, 1.0, 4.0])


def main() -> None:
    out = Path(sys.argv[1])
    info = init_distributed("cpu")
    try:
        rows = rank_rows(37, info.rank, info.world_size)
        mine = RunningStats(5)
        block = features()[rows.start : rows.stop]
        for i in range(0, len(block), 4):
            mine.update(block[i : i + 4])
        merged = all_merge(mine, info)
    finally:
        shutdown_distributed()
    np.savez(
        out / f"rank{info.rank}.npz",
        count=merged.count,
        mean=merged.mean,
        scatter=merged.scatter,
        own=len(rows),
    )


if __name__ == "__main__":
    main()
