"""Feature statistics (mean, covariance) computed by many processes and merged exactly.

Each rank streams its own rows into a :class:`~walt_bench.evaluation.frechet.RunningStats` (count, mean,
scatter = Σ (x - mean)(x - mean)ᵀ, float64); :func:`merge_running_stats` combines parts with the pairwise
update of Chan, Golub & LeVeque (1979)::

    n = n_a + n_b,   δ = mean_b - mean_a,   mean = mean_a + δ n_b / n,
    scatter = scatter_a + scatter_b + δ δᵀ n_a n_b / n

which is the statistics of the union of the rows (no approximation; float64 rounding only). :func:`all_merge`
gathers every rank's part and merges them in rank order, so every rank holds the same result.

How ``walt-bench eval stats`` / the reference statistics of ``walt-bench eval`` use it under ``torchrun``:
the seeded list of item keys (``dataset_batches``) is cut into contiguous per-rank blocks
(:func:`rank_rows`), each rank runs the extractor on its block into its own accumulator, ``all_merge`` combines
the FD statistics, and rank 0 alone writes the cached ``.npz`` (after which a barrier). Sample features work the
same way over the sample shards (``walt_bench.data.shards.assign``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from walt_bench.evaluation.frechet import RunningStats


def merge_running_stats(parts: Sequence[RunningStats]) -> RunningStats:
    """The statistics of the union of the rows behind ``parts`` (all of one ``dim``), merged in order."""
    if not parts:
        raise ValueError("merge_running_stats: no parts")
    dim = parts[0].dim
    out = RunningStats(dim)
    for part in parts:
        if part.dim != dim:
            raise ValueError(f"merge_running_stats: dims {dim} and {part.dim}")
        if part.count == 0:
            continue
        total = out.count + part.count
        delta = part.mean - out.mean
        out.scatter = out.scatter + part.scatter + np.outer(delta, delta) * (out.count * part.count / total)
        out.mean = out.mean + delta * (part.count / total)
        out.count = total
    return out


def all_merge(stats: RunningStats, info) -> RunningStats:
    """Every rank's ``stats`` merged in rank order, on every rank (``info``: ``engine.distributed.DistInfo``)."""
    from walt_bench.engine.distributed import all_gather_objects

    gathered = all_gather_objects((stats.dim, stats.count, stats.mean, stats.scatter), info)
    parts = []
    for dim, count, mean, scatter in gathered:
        part = RunningStats(dim)
        part.count, part.mean, part.scatter = int(count), np.asarray(mean), np.asarray(scatter)
        parts.append(part)
    return merge_running_stats(parts)


def rank_rows(count: int, rank: int, world_size: int) -> range:
    """Rank ``rank``'s contiguous block of rows ``[0, count)`` (sizes differ by at most one)."""
    base, extra = divmod(count, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))
