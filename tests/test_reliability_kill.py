"""Reliability, item 1: a trainer SIGKILLed at a random step or in the middle of a checkpoint write resumes
exactly as the uninterrupted run (CPU, bitwise), with each step once in metrics.jsonl, and the temporary file of
the interrupted write is removed on the next start."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from walt_bench.engine.rundir import read_metrics

SCRIPT = Path(__file__).with_name("reliability_kill_script.py")
REPO = Path(__file__).resolve().parents[1]
STEPS = 12
RUN = "tiny-c0ffee000001"


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), *extra],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the trainer ended before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _logged_steps(out: Path) -> int:
    path = out / RUN / "metrics.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _final(out: Path) -> dict:
    return torch.load(out / "final.pt", weights_only=True)


def _assert_same_as_reference(out: Path, reference: Path) -> None:
    got, want = _final(out), _final(reference)
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), f"{k} differs from the uninterrupted run"
    records = read_metrics(out / RUN / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # each step once, none missing
    ref = read_metrics(reference / RUN / "metrics.jsonl")
    assert [(r["loss"], r["grad_norm"]) for r in records] == [(r["loss"], r["grad_norm"]) for r in ref]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    done = _run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_sigkill_at_a_random_step_then_resume_is_bitwise_the_uninterrupted_run(tmp_path, reference):
    seed = random.randrange(10**6)
    kill_after = random.Random(seed).randrange(1, STEPS)  # logged steps before the kill
    proc = _start(tmp_path, "--step-delay", "0.15")
    _wait_for(lambda: _logged_steps(tmp_path) >= kill_after, proc, f"step {kill_after} (seed {seed})")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_as_reference(tmp_path, reference)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_and_the_orphan_is_removed(
    tmp_path, reference
):
    proc = _start(tmp_path, "--hang-in-save-at", "6")
    _wait_for(lambda: (tmp_path / "in-save").exists(), proc, "the step-6 checkpoint write")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = tmp_path / RUN / "checkpoints"
    orphans = [p.name for p in ckpts.iterdir() if ".tmp-" in p.name]
    assert orphans == [f".step_00000006.pt.tmp-{proc.pid}"]  # complete temp file, never renamed
    assert sorted(p.name for p in ckpts.glob("step_*.pt")) == ["step_00000003.pt"]
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"removed 1 temporary file(s) that a killed run left in {tmp_path / RUN}" in resumed.stderr
    assert not [p for p in ckpts.iterdir() if ".tmp-" in p.name]
    _assert_same_as_reference(tmp_path, reference)
