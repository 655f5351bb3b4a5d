"""How many intra-op threads torch should use: the cores this process may run on, unless the user said.

On a shared machine torch's default (every core it can see) oversubscribes: with another busy process on a
2-core machine the pipeline ran 10-15x slower (``/work/shared/environment.md``). The rule, applied by the CLI
before any command imports torch:

1. ``OMP_NUM_THREADS`` is set (by the user, or by ``torchrun``, which sets 1 per process) -> respected as is.
2. otherwise -> the CPUs in this process's affinity mask (``os.sched_getaffinity``), capped by a cgroup CPU
   quota when one is set (containers), divided among the ``LOCAL_WORLD_SIZE`` processes of this node.

DataLoader workers use one thread each (``walt_bench.data.loader.worker_init_fn``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path


def cgroup_cpu_limit(root: str | Path = "/sys/fs/cgroup") -> int | None:
    """CPUs allowed by a cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) quota, rounded up; None if none."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def thread_count(environ: MutableMapping[str, str] | None = None, cpus: int | None = None) -> int | None:
    """Threads to use, or None when ``OMP_NUM_THREADS`` is set (then torch follows it already)."""
    environ = os.environ if environ is None else environ
    if environ.get("OMP_NUM_THREADS"):
        return None
    cpus = usable_cpus() if cpus is None else cpus
    try:
        local = max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cpus // local)


def configure_threads(environ: MutableMapping[str, str] | None = None) -> int | None:
    """Apply :func:`thread_count` at CLI start; returns the count set, or None when nothing was changed.

    It sets ``OMP_NUM_THREADS`` before torch is imported (OpenMP/MKL read it when torch loads; child processes
    such as loader workers inherit it). A process that loaded torch before calling the CLI (a test suite, a
    notebook) has chosen its threads already and is left alone.
    """
    environ = os.environ if environ is None else environ
    n = thread_count(environ)
    if n is None or "torch" in sys.modules:
        return None
    environ["OMP_NUM_THREADS"] = str(n)
    return n
