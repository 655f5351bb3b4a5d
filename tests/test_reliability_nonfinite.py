"""Reliability, item 7: a step with a non-finite loss or gradient is refused (no update) and logged; the run
stops after `train.max_bad_steps` such steps with diagnostics (part, step, last good checkpoint), and the advice
it prints works."""

from __future__ import annotations

import argparse
import json
import re
import shlex

import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine.args import add_train_arguments
from walt_bench.engine.checkpoint import load_checkpoint
from walt_bench.engine.loop import NonFiniteLossError, Part
from walt_bench.engine.rundir import read_metrics

NAN = float("nan")


def nan_at(steps, lr_threshold=None):
    """The regression loss, NaN at the given 0-based steps (only while train.lr > lr_threshold, if given: a
    stand-in for a learning rate too high)."""

    def loss(batch, ctx):
        value, extras = regression_loss(batch, ctx)
        lr = ctx.raw["net"].lr_for_test
        if ctx.step in steps and (lr_threshold is None or lr > lr_threshold):
            return value * NAN, extras
        return value, extras

    return loss


def run(out, loss, identity="ba5e00000001", resume="auto", allow=False, lr=1e-2, **kw):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(out, lr=lr, **kw)
    torch.manual_seed(0)
    net = TinyNet()
    net.lr_for_test = lr
    return tiny_train(
        [Part("net", net, loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=identity,
        resume=resume,
        allow_spec_mismatch=allow,
        progress=False,
    )


def test_bad_steps_are_skipped_without_an_update_and_logged(tmp_path, capsys):
    result = run(tmp_path, nan_at({2, 5}), steps=8, max_bad_steps=2)
    assert result.summary["status"] == "finished" and result.summary["bad_steps"] == [3, 6]
    records = read_metrics(result.run_dir / "metrics.jsonl")
    skipped = [r for r in records if r.get("skipped")]
    assert [(r["step"], r["parts"]) for r in skipped] == [(3, ["net"]), (6, ["net"])]
    assert all(r["net"] == "nan" for r in skipped)
    assert sorted(r["step"] for r in records if "loss" in r) == [1, 2, 4, 5, 7, 8]
    assert "step skipped (no update), bad step 1 of at most train.max_bad_steps=2" in capsys.readouterr().err
    for p in result.modules["net"].parameters():
        assert torch.isfinite(p).all()


def test_a_skipped_step_changes_no_parameter_optimizer_or_ema_state(tmp_path):
    before = run(tmp_path / "a", regression_loss, steps=3, ckpt_every=2)  # checkpoint at step 2
    after = run(tmp_path / "b", nan_at({2}), steps=3, ckpt_every=2)  # step 3 refused
    a = load_checkpoint(before.run_dir / "checkpoints" / "step_00000002.pt")["parts"]["net"]
    b = load_checkpoint(after.run_dir / "checkpoints" / "step_00000003.pt")["parts"]["net"]
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert a["scheduler"] == b["scheduler"]
    assert all(
        torch.equal(a["optimizer"]["state"][k]["exp_avg"], b["optimizer"]["state"][k]["exp_avg"])
        for k in a["optimizer"]["state"]
    )


def test_the_run_stops_after_max_bad_steps_with_diagnostics(tmp_path):
    with pytest.raises(NonFiniteLossError) as info:
        run(tmp_path, nan_at({3, 5, 6}), steps=10, ckpt_every=2, max_bad_steps=2)
    msg = str(info.value)
    assert "step 7 (ctx.step 6) in part(s) net" in msg  # which step, which part
    assert "bad step 3 of the run (train.max_bad_steps=2; earlier skipped steps: [4, 6])" in msg
    assert "last good checkpoint is " in msg and "step_00000006.pt" in msg
    summary = json.loads((tmp_path / "tiny-ba5e00000001" / "summary.json").read_text())
    assert summary["status"] == "nonfinite_loss" and summary["bad_steps"] == [4, 6, 7]


def test_following_the_printed_advice_runs(tmp_path):
    """lr too high -> NaN from step 5 on; the advice: lower train.lr and --resume PATH --allow-spec-mismatch."""
    diverging = nan_at(set(range(5, 100)), lr_threshold=5e-3)
    with pytest.raises(NonFiniteLossError) as info:
        run(tmp_path, diverging, steps=10, ckpt_every=2, max_bad_steps=0)
    msg = str(info.value)
    flags = re.search(r"add (--resume \S+ --allow-spec-mismatch)\.", msg).group(1)
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(shlex.split(flags))  # the printed flags are the trainer's real flags
    assert args.resume.endswith("step_00000004.pt") and args.allow_spec_mismatch
    assert "train.lr=<lower>" in msg
    # the changed spec (train.lr lower) is another identity: a new run directory, continued from the checkpoint
    with pytest.warns(UserWarning, match="train.lr: recorded 0.01, spec 0.001"):
        fixed = run(
            tmp_path,
            diverging,
            identity="ba5e00000002",
            lr=1e-3,
            steps=10,
            ckpt_every=2,
            max_bad_steps=0,
            resume=args.resume,
            allow=args.allow_spec_mismatch,
        )
    assert fixed.summary["status"] == "finished" and fixed.summary["resumed_from"] == args.resume
    assert [r["step"] for r in read_metrics(fixed.run_dir / "metrics.jsonl")] == [5, 6, 7, 8, 9, 10]
