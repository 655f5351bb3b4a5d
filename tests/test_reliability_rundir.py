"""Reliability, items 4 and 5: `--resume never` destroys nothing of the previous run, and a run directory is
locked by its trainer (a second trainer exits 2 naming the holder; a dead holder's lock is taken over)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine.loop import Part
from walt_bench.engine.rundir import RunDirLockedError, RunLock, read_metrics
from walt_bench.errors import UserError

IDENTITY = "10c4ed000001"


def run(out, steps=4, resume="auto", **kw):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(out, steps=steps, ckpt_every=2, log_every=1)
    torch.manual_seed(0)
    return tiny_train(
        [Part("net", TinyNet(), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=IDENTITY,
        resume=resume,
        progress=False,
        **kw,
    )


# -- item 4: --resume never -------------------------------------------------------------------------------
def test_resume_never_moves_the_previous_checkpoints_metrics_and_summary_aside_intact(tmp_path):
    first = run(tmp_path)
    d = first.run_dir
    old_metrics, old_summary = (d / "metrics.jsonl").read_bytes(), (d / "summary.json").read_bytes()
    old_ckpts = {p.name: p.read_bytes() for p in (d / "checkpoints").glob("step_*.pt")}
    second = run(tmp_path, steps=2, resume="never")
    assert second.summary["resumed_from"] is None
    (aside,) = (d / "checkpoints").glob("replaced-*")
    assert (aside / "metrics.jsonl").read_bytes() == old_metrics  # not emptied
    assert (aside / "summary.json").read_bytes() == old_summary  # not overwritten
    assert {p.name: p.read_bytes() for p in aside.glob("step_*.pt")} == old_ckpts
    assert [r["step"] for r in read_metrics(d / "metrics.jsonl")] == [1, 2]  # the new run's own
    assert json.loads((d / "summary.json").read_text())["final_step"] == 2


def test_resume_never_twice_keeps_both_earlier_runs(tmp_path):
    run(tmp_path)
    run(tmp_path, resume="never")
    run(tmp_path, resume="never")
    asides = sorted((tmp_path / f"tiny-{IDENTITY}" / "checkpoints").glob("replaced-*"))
    assert len(asides) == 2 and all((a / "metrics.jsonl").is_file() for a in asides)


# -- item 5: the lock --------------------------------------------------------------------------------------
def test_a_second_trainer_on_a_locked_directory_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / f"tiny-{IDENTITY}"
    with RunLock(
        run_dir
    ):  # another trainer holds it (a separate open file description, like another process)
        with pytest.raises(RunDirLockedError) as info:
            run(tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, UserError)  # the CLI prints it and exits 2
    assert f"PID {os.getpid()} on host {socket.gethostname()}" in msg and str(run_dir / "lock") in msg
    assert not (run_dir / "metrics.jsonl").exists()  # it wrote nothing
    run(tmp_path)  # after the holder is gone, the directory is free


def test_a_lock_held_by_another_live_process_is_refused(tmp_path):
    run_dir = tmp_path / "r"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from walt_bench.engine.rundir import RunLock; "
            f"RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirLockedError, match=f"PID {holder.pid} on host"):
            RunLock(run_dir).acquire()
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(RuntimeWarning, match="process is gone"):  # the kernel dropped the dead holder's lock
        RunLock(run_dir).acquire().release()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / f"tiny-{IDENTITY}"
    run_dir.mkdir()
    stale = {
        "host": socket.gethostname(),
        "pid": dead.pid,
        "started": "earlier",
        "command": "walt-bench train",
    }
    (run_dir / "lock").write_text(json.dumps(stale))
    with pytest.warns(RuntimeWarning, match=f"taking over the stale lock .*PID {dead.pid}.*process is gone"):
        result = run(tmp_path)
    assert result.summary["status"] == "finished"
    assert f"PID {dead.pid}" in capsys.readouterr().err
    assert (run_dir / "lock").read_text() == ""  # released at the end


def test_the_lock_names_host_and_pid_while_training(tmp_path):
    seen = {}

    def peek(batch, ctx):
        if not seen:
            seen.update(json.loads((tmp_path / f"tiny-{IDENTITY}" / "lock").read_text()))
        return regression_loss(batch, ctx)

    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=1)
    tiny_train(
        [Part("net", TinyNet(), peek)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=IDENTITY,
        progress=False,
    )
    assert seen["pid"] == os.getpid() and seen["host"] == socket.gethostname()
