"""Exact resume on CPU: stop after step k, resume, and every later loss is bitwise identical."""

from __future__ import annotations

import json

import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine.checkpoint import load_checkpoint
from walt_bench.engine.loop import Part
from walt_bench.engine.rundir import read_metrics
from walt_bench.errors import CheckpointError

STEPS = 10


def run(
    out, stop_at=None, resume="auto", spec_hash="b" * 12, allow=False, grad_accum_steps=1, optimizer="adamw"
):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(
        out, steps=STEPS, ckpt_every=3, grad_accum_steps=grad_accum_steps, batch_size=8, optimizer=optimizer
    )
    torch.manual_seed(0)
    return tiny_train(
        [Part("net", TinyNet(dropout=0.3), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=spec_hash,
        resume=resume,
        allow_spec_mismatch=allow,
        stop_at_step=stop_at,
        progress=False,
    )


def losses(result):
    return [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(result.run_dir / "metrics.jsonl")]


@pytest.mark.parametrize(("grad_accum_steps", "optimizer"), [(1, "adamw"), (2, "adamw"), (1, "adafactor")])
def test_stopped_and_resumed_run_matches_uninterrupted_run_bitwise(tmp_path, grad_accum_steps, optimizer):
    kw = dict(grad_accum_steps=grad_accum_steps, optimizer=optimizer)
    full = run(tmp_path / "full", **kw)
    first = run(tmp_path / "split", stop_at=4, **kw)
    assert first.step == 4 and first.summary["status"] == "stopped"
    torch.manual_seed(123)  # a resumed process starts with unrelated global RNG state
    second = run(tmp_path / "split", **kw)
    assert second.summary["resumed_from"].endswith("step_00000004.pt")
    assert losses(second) == losses(full)  # exact float equality, all 10 steps
    for a, b in zip(full.modules["net"].parameters(), second.modules["net"].parameters()):
        assert torch.equal(a, b)
    for a, b in zip(full.emas["net"].shadow, second.emas["net"].shadow):
        assert torch.equal(a, b)


def test_checkpoint_stores_rng_data_position_and_spec(tmp_path):
    result = run(tmp_path, stop_at=3, grad_accum_steps=2)
    ckpt = load_checkpoint(result.run_dir / "checkpoints" / "step_00000003.pt")
    assert ckpt["step"] == 3 and ckpt["data_position"] == 6
    assert ckpt["spec"]["train"]["steps"] == STEPS and ckpt["identity"] == "bbbbbbbbbbbb"
    assert set(ckpt["rng"][0]) == {"python", "numpy", "torch", "cuda"}
    assert set(ckpt["parts"]["net"]) == {"model", "ema", "optimizer", "scheduler"}


def test_resume_with_different_spec_is_refused_naming_fields_unless_allowed(tmp_path):
    first = run(tmp_path, stop_at=3)
    path = first.run_dir / "checkpoints" / "step_00000003.pt"
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=STEPS, lr=2e-2)
    with pytest.raises(CheckpointError, match=r"train\.lr: recorded 0\.01, spec 0\.02"):
        tiny_train(
            [Part("net", TinyNet(), regression_loss)],
            make_loader(),
            train_cfg=train_cfg,
            run_cfg=run_cfg,
            tracking_cfg=tracking_cfg,
            spec_dict=spec_dict,
            spec_hash="cccccccccccc",
            resume=str(path),
            progress=False,
        )
    with pytest.warns(UserWarning, match="train.lr"):
        resumed = tiny_train(
            [Part("net", TinyNet(), regression_loss)],
            make_loader(),
            train_cfg=train_cfg,
            run_cfg=run_cfg,
            tracking_cfg=tracking_cfg,
            spec_dict=spec_dict,
            spec_hash="cccccccccccc",
            resume=str(path),
            allow_spec_mismatch=True,
            progress=False,
        )
    assert resumed.step == STEPS and read_metrics(resumed.run_dir / "metrics.jsonl")[0]["step"] == 4


def test_resume_never_starts_fresh_and_auto_continues(tmp_path):
    run(tmp_path, stop_at=6)
    again = run(tmp_path, stop_at=2, resume="never")
    assert again.summary["resumed_from"] is None
    assert [r["step"] for r in read_metrics(again.run_dir / "metrics.jsonl")] == [1, 2]
    summary = json.loads((again.run_dir / "summary.json").read_text())
    assert summary["final_step"] == 2
    assert [p.rsplit("/", 1)[1] for p in summary["checkpoints"]] == ["step_00000002.pt"]
    assert len(list((again.run_dir / "checkpoints").glob("replaced-*/step_00000006.pt"))) == 1
    continued = run(tmp_path, stop_at=3)
    assert continued.summary["resumed_from"].endswith("step_00000002.pt")


def test_asking_a_finished_run_again_keeps_its_summary_and_metrics(tmp_path):
    """A driver re-running a done stage gets the finished run back; nothing of it is rewritten."""
    first = run(tmp_path)
    metrics = (first.run_dir / "metrics.jsonl").read_text()
    again = run(tmp_path)
    assert again.summary == first.summary and again.step == first.step
    assert (first.run_dir / "metrics.jsonl").read_text() == metrics
