"""Reference/sample feature statistics from many processes: per-rank RunningStats merged exactly (Chan et al.)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from walt_bench.evaluation.distributed_stats import merge_running_stats, rank_rows
from walt_bench.evaluation.frechet import RunningStats

HERE = Path(__file__).parent


def test_merged_parts_are_the_statistics_of_all_rows():
    x = np.random.default_rng(1).normal(5.0, 3.0, size=(23, 4))
    parts = []
    for rows in (range(0, 9), range(9, 9), range(9, 10), range(10, 23)):  # uneven, one empty, one single row
        part = RunningStats(4)
        part.update(x[rows.start : rows.stop])
        parts.append(part)
    merged = merge_running_stats(parts)
    assert merged.count == 23
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(merged.covariance("sample"), np.cov(x, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(merged.covariance("population"), np.cov(x, rowvar=False, ddof=0), rtol=1e-12)


def test_rank_rows_cover_every_row_once():
    for count, world in ((37, 2), (5, 8), (64, 8)):
        blocks = [rank_rows(count, r, world) for r in range(world)]
        assert [i for b in blocks for i in b] == list(range(count))
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_two_processes_give_the_statistics_of_one(tmp_path):
    from sharding_stats_script import features

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    proc = subprocess.run(
        [*cmd, str(HERE / "sharding_stats_script.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (np.load(tmp_path / f"rank{r}.npz") for r in (0, 1))
    assert int(r0["own"]) + int(r1["own"]) == 37 and int(r0["count"]) == 37
    assert np.array_equal(r0["scatter"], r1["scatter"]) and np.array_equal(r0["mean"], r1["mean"])
    one = RunningStats(5)
    for i in range(0, 37, 4):
        one.update(features()[i : i + 4])
    np.testing.assert_allclose(r0["mean"], one.mean, rtol=1e-13)
    np.testing.assert_allclose(r0["scatter"] / 36, np.cov(features(), rowvar=False), rtol=1e-12)
