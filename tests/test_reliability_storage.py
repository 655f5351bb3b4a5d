"""Reliability, item 3: a full disk or an unwritable folder gives a clear error naming the path and what to free
(exit 2 from the CLI, no traceback), the previous checkpoint and metrics stay intact, metrics lines are appended
whole, and a torn last line is repaired on resume."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess

import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.cli import main
from walt_bench.engine import checkpoint as ckpt_io
from walt_bench.engine import rundir
from walt_bench.engine.checkpoint import load_checkpoint
from walt_bench.engine.loop import Part
from walt_bench.engine.rundir import MetricsLog, read_metrics
from walt_bench.errors import StorageError, UserError

IDENTITY = "d15cf0111111"


def run(out, steps=6, **kw):
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
        progress=False,
        **kw,
    )


class _FillingFile(io.RawIOBase):
    """A file whose disk fills up after ``room`` bytes (a short write, then ENOSPC), like a real full disk."""

    def __init__(self, real, room):
        self.real, self.room = real, room

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = data[: self.room]
        self.room -= len(part)
        return self.real.write(part)

    def flush(self):
        self.real.flush()

    def fileno(self):
        return self.real.fileno()

    def close(self):
        self.real.close()
        super().close()


def test_disk_full_during_a_checkpoint_save_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    real_open, saves = open, []

    def filling_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        if "w" in mode and ".tmp-" in str(path):
            saves.append(path)
            if len(saves) == 2:  # the step-4 checkpoint: 1 KB fits, then the disk is full
                return _FillingFile(f, 1024)
        return f

    monkeypatch.setattr(ckpt_io, "open", filling_open, raising=False)
    with pytest.raises(StorageError) as info:
        run(tmp_path)
    msg = str(info.value)
    assert "no space left while writing checkpoint" in msg and "step_00000004.pt" in msg
    assert "inline_container" not in msg and "Free space" in msg
    run_dir = tmp_path / f"tiny-{IDENTITY}"
    ckpts = run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000002.pt"]  # no half file, no temp file
    assert load_checkpoint(ckpts / "step_00000002.pt")["step"] == 2
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    resumed = run(tmp_path)  # once space is freed, the same command continues
    assert resumed.summary["resumed_from"].endswith("step_00000002.pt")
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_disk_full_on_a_real_small_tmpfs(tmp_path):
    """The same through a real filesystem (where the machine lets the tests mount a tmpfs)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        with pytest.raises(StorageError, match=r"no space left while writing checkpoint .*big\.pt"):
            ckpt_io.atomic_save({"w": torch.zeros(64 * 1024)}, mnt / "big.pt")  # 256 KB into 96 KB
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_metrics_append_on_a_full_disk_leaves_no_torn_line(tmp_path, monkeypatch):
    log = MetricsLog(tmp_path / "metrics.jsonl", resume_step=None)
    log.write({"step": 1, "loss": 0.5})

    class HalfWrites:
        def __getattr__(self, name):
            return getattr(os, name)

        def write(self, fd, data):
            os.write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "os", HalfWrites())
    with pytest.raises(StorageError, match=r"no space left while writing the metrics log .*metrics\.jsonl"):
        log.write({"step": 2, "loss": 0.25})
    monkeypatch.undo()
    log.close()
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "loss": 0.5}\n'


def test_a_torn_last_line_is_repaired_on_resume(tmp_path):
    first = run(tmp_path, steps=6, stop_at_step=4)
    metrics = first.run_dir / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 5, "loss": 0.1')  # the process died mid-append
    with pytest.warns(RuntimeWarning, match="dropped 1 torn or unparsable line"):
        resumed = run(tmp_path, steps=6)
    assert resumed.summary["status"] == "finished"
    assert [r["step"] for r in read_metrics(metrics)] == [1, 2, 3, 4, 5, 6]


def test_an_io_error_during_the_resume_rewrite_keeps_metrics_intact(tmp_path, monkeypatch):
    first = run(tmp_path, steps=8, stop_at_step=6)  # checkpoints 2, 4, 6; metrics 1..6
    metrics = first.run_dir / "metrics.jsonl"
    (first.run_dir / "checkpoints" / "step_00000006.pt").unlink()  # resume from 4: the rewrite drops 5, 6
    before = metrics.read_bytes()

    real_io_open = io.open

    def failing_open(path, mode="r", *a, **kw):
        f = real_io_open(path, mode, *a, **kw)
        if "metrics.jsonl" in str(path) and ("w" in mode):
            f.write(b"" if "b" in mode else "")
            f.close()
            raise OSError(errno.EIO, "Input/output error", str(path))
        return f

    monkeypatch.setattr(io, "open", failing_open)
    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OSError, match="Input/output error"):
        run(tmp_path, steps=8)
    monkeypatch.undo()
    assert metrics.read_bytes() == before  # 6 lines, not 0


def test_unwritable_run_directory_is_a_storage_error_naming_it(tmp_path, monkeypatch):
    target = tmp_path / f"tiny-{IDENTITY}"

    class ReadOnly:
        def __getattr__(self, name):
            return getattr(os, name)

        def open(self, path, *a, **kw):
            if str(path).startswith(str(target)):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return os.open(path, *a, **kw)

    monkeypatch.setattr(rundir, "os", ReadOnly())
    with pytest.raises(StorageError, match=rf"cannot write .*{target}.*Read-only file system.*run.out_dir"):
        run(tmp_path)


def test_cli_exits_2_naming_the_path_when_the_disk_is_full(tmp_path, monkeypatch, capsys):
    from walt_bench.data import synthetic

    def full(path, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(synthetic, "write_video", full, raising=False)
    monkeypatch.setattr("walt_bench.data.video_io.write_video", full)
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--videos", "3", "--classes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no space left while writing output") and str(tmp_path / "d") in err
    assert "Traceback" not in err


def test_storage_error_is_a_user_error():
    assert issubclass(StorageError, UserError)
