"""The CLI's thread rule: OMP_NUM_THREADS is respected, else the usable CPUs; loader workers use one thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from walt_bench.bench import threads

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_omp_num_threads_is_respected():
    env = {"OMP_NUM_THREADS": "3"}
    assert threads.thread_count(env, cpus=8) is None
    assert threads.configure_threads(env) is None and env == {"OMP_NUM_THREADS": "3"}


def test_without_omp_num_threads_the_affinity_mask_decides(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.usable_cpus() == 3
    assert threads.thread_count({}) == 3


def test_a_cgroup_quota_caps_the_cpus(monkeypatch, tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2)
    assert threads.usable_cpus() == 2


def test_local_processes_share_the_cpus():
    assert threads.thread_count({"LOCAL_WORLD_SIZE": "2"}, cpus=4) == 2
    assert threads.thread_count({"LOCAL_WORLD_SIZE": "8"}, cpus=4) == 1


def test_a_process_that_loaded_torch_keeps_its_threads(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    torch.set_num_threads(1)
    env: dict = {}
    assert threads.configure_threads(env) is None  # torch is loaded here (this test imported it)
    assert torch.get_num_threads() == 1 and env == {}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 usable CPUs")
def test_before_torch_loads_the_rule_becomes_torchs_thread_count():
    # 2 CPUs shared by LOCAL_WORLD_SIZE=2 processes: 1 thread each, where torch alone would take 2
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(PYTHONPATH=str(ROOT), LOCAL_WORLD_SIZE="2")
    code = (
        "import os; from walt_bench.bench.threads import configure_threads; n = configure_threads(); "
        "import torch; print(n, torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    ).stdout.split()
    assert out == ["1", "1", "1"]


def test_the_cli_applies_the_rule_before_dispatch(monkeypatch):
    from walt_bench import cli

    seen = []
    monkeypatch.setattr(threads, "configure_threads", lambda: seen.append(True))
    assert cli.main(["spec", "validate", str(ROOT / "experiments/smoke/default.yaml")]) == 0
    assert seen == [True]


def test_loader_workers_use_one_thread(restore_threads):
    from walt_bench.data.loader import worker_init_fn

    torch.set_num_threads(2)
    worker_init_fn(0)
    assert torch.get_num_threads() == 1
