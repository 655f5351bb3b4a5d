"""Checkpoint files: atomic writes, keep-last-N, loading errors, spec diffs, RNG state, EMA weights."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine import checkpoint as ckpt_io
from walt_bench.engine.checkpoint import load_checkpoint, load_weights
from walt_bench.engine.loop import Part
from walt_bench.errors import CheckpointError


def test_crash_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=8, ckpt_every=2)
    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the step-4 checkpoint: write part of it, then die
            f.write(b"partial garbage")
            raise OSError("disk full (injected)")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="injected"):
        tiny_train(
            [Part("net", TinyNet(), regression_loss)],
            make_loader(),
            train_cfg=train_cfg,
            run_cfg=run_cfg,
            tracking_cfg=tracking_cfg,
            spec_dict=spec_dict,
            spec_hash="dddddddddddd",
            progress=False,
        )
    ckpt_dir = tmp_path / "tiny-dddddddddddd" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["step_00000002.pt"]  # no temp file left behind
    assert load_checkpoint(ckpt_dir / "step_00000002.pt")["step"] == 2


def test_failed_replace_keeps_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    ckpt_io.atomic_save({"v": torch.ones(3)}, path)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("crash (injected)")))
    with pytest.raises(OSError, match="injected"):
        ckpt_io.atomic_save({"v": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_keep_last_n_prunes_oldest(tmp_path):
    for step in (1, 5, 10, 20, 100):
        ckpt_io.atomic_save({"step": step}, ckpt_io.checkpoint_path(tmp_path, step))
    (tmp_path / ".step_00000200.pt.tmp-1").write_bytes(b"x")  # an interrupted write is not a checkpoint
    deleted = ckpt_io.prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in deleted] == ["step_00000001.pt", "step_00000005.pt", "step_00000010.pt"]
    assert [s for s, _ in ckpt_io.list_checkpoints(tmp_path)] == [20, 100]
    assert ckpt_io.latest_checkpoint(tmp_path).name == "step_00000100.pt"


def test_training_keeps_only_the_last_n_checkpoints(tmp_path):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=10, ckpt_every=2, keep_last=2)
    result = tiny_train(
        [Part("net", TinyNet(), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="e" * 12,
        progress=False,
    )
    names = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert names == ["step_00000008.pt", "step_00000010.pt"]


def test_missing_and_corrupt_files_raise_checkpoint_error_with_the_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "step_00000003.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint")
    with pytest.raises(CheckpointError, match=r"step_00000003\.pt is not a PyTorch zip file"):
        load_checkpoint(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a walt_bench checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_identity_mismatch_is_refused_with_dotted_fields_and_allowed_with_the_flag(tmp_path):
    old = {"model.lora_rank": 2, "model.st_window": [5, 8, 8], "train.lr": 5e-4}
    new = {"model.lora_rank": 16, "model.st_window": [5, 4, 4], "train.lr": 5e-4}
    path = ckpt_io.save_checkpoint(
        {"format": ckpt_io.FORMAT, "identity": "111111111111", "identity_fields": old, "spec": {}},
        tmp_path / "c.pt",
    )
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, identity="222222222222", identity_fields=new)
    msg = str(info.value)
    assert "model.lora_rank: recorded 2, spec 16" in msg
    assert "model.st_window: recorded [5, 8, 8], spec [5, 4, 4]" in msg
    assert "train.lr" not in msg and "--allow-spec-mismatch" in msg
    with pytest.warns(UserWarning, match="model.lora_rank"):
        assert load_checkpoint(path, identity="222222222222", identity_fields=new, allow_spec_mismatch=True)
    assert load_checkpoint(path, identity="111111111111", identity_fields=old)["identity_fields"] == old


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt_io.atomic_save({"rng": ckpt_io.capture_rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt_io.restore_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_load_weights_prefers_ema(tmp_path):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=4, ema_decay=0.5)
    result = tiny_train(
        [Part("net", TinyNet(), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="f" * 12,
        progress=False,
    )
    path = result.summary["last_checkpoint"]
    fresh = TinyNet()
    assert load_weights(path, fresh) == "ema"
    assert torch.equal(fresh.fc1.weight, result.emas["net"].shadow[0])
    assert load_weights(path, fresh, use_ema=False) == "model"
    assert torch.equal(fresh.fc1.weight, result.modules["net"].fc1.weight)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_weights(path, torch.nn.Linear(2, 2))
