"""The engine's parts on their own: the train step, the optimizer step with its non-finite guard, the
checkpointer and the metrics logger (engine/loop.py composes them)."""

from __future__ import annotations

import json

import pytest
import torch
from engine_tiny import TinyNet, make_loader, regression_loss

from walt_bench.engine.checkpointer import Checkpointer
from walt_bench.engine.config import TrainConfig
from walt_bench.engine.distributed import init_distributed
from walt_bench.engine.ema import EMA
from walt_bench.engine.loop import Part, _PartState
from walt_bench.engine.metrics_logger import MetricsLogger
from walt_bench.engine.optim import build_optimizer, build_scheduler
from walt_bench.engine.step import NonFiniteLossError, optimizer_step, train_step
from walt_bench.engine.tracker import NullTracker


def _state(loss_fn=regression_loss, ema=False, seed=0) -> _PartState:
    torch.manual_seed(seed)
    net = TinyNet(dropout=0.0)
    cfg = TrainConfig(steps=10, lr=1e-2, warmup_steps=0, grad_clip=0.0)
    opt = build_optimizer(net.parameters(), cfg)
    return _PartState(
        Part("net", net, loss_fn),
        cfg,
        net,
        net,
        opt,
        build_scheduler(opt, cfg, 10),
        EMA(net, 0.5) if ema else None,
    )


INFO = init_distributed("cpu")


def _plain_loss(batch, ctx):
    return ((ctx.modules["net"](batch["x"]) - batch["y"]) ** 2).mean()


def test_train_step_accumulates_the_mean_gradient_without_touching_parameters():
    s = _state(_plain_loss)
    before = [p.detach().clone() for p in s.raw.parameters()]
    out = train_step(0, [s], [s], iter(make_loader(batch=4)(0)), info=INFO, seed=1, accum=2, dtype=None)
    assert all(torch.equal(a, p) for a, p in zip(before, s.raw.parameters()))
    assert out.samples == 8
    singles = []
    for micro in range(2):  # each micro-batch alone (batch `micro` of the same loader)
        t = _state(_plain_loss)
        train_step(0, [t], [t], iter(make_loader(batch=4)(micro)), info=INFO, seed=1, accum=1, dtype=None)
        singles.append([p.grad for p in t.raw.parameters()])
    for acc, g0, g1 in zip((p.grad for p in s.raw.parameters()), *singles):
        torch.testing.assert_close(acc, (g0 + g1) / 2)


def test_optimizer_step_updates_and_reports_the_norm_and_lr():
    s = _state()
    out = train_step(0, [s], [s], iter(make_loader()(0)), info=INFO, seed=1, accum=1, dtype=None)
    before = [p.detach().clone() for p in s.raw.parameters()]
    expected = torch.nn.utils.get_total_norm([p.grad for p in s.raw.parameters()])
    norms, lrs = optimizer_step(0, [s], out, info=INFO, on_nonfinite=lambda step, v: "bad")
    assert norms["net"] == pytest.approx(float(expected)) and lrs["net"] == pytest.approx(1e-2)
    assert any(not torch.equal(a, p) for a, p in zip(before, s.raw.parameters()))
    assert all(p.grad is None for p in s.raw.parameters())


def test_optimizer_step_refuses_a_nonfinite_loss_and_changes_nothing():
    def nan_loss(batch, ctx):
        return regression_loss(batch, ctx)[0] * float("nan")

    s = _state(nan_loss, ema=True)
    out = train_step(3, [s], [s], iter(make_loader()(0)), info=INFO, seed=1, accum=1, dtype=None)
    before = [p.detach().clone() for p in s.raw.parameters()]
    ema_before = {k: v.clone() for k, v in s.ema.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="step 3 said"):
        optimizer_step(3, [s], out, info=INFO, on_nonfinite=lambda step, v: f"step {step} said {v}")
    assert all(torch.equal(a, p) for a, p in zip(before, s.raw.parameters()))
    assert all(torch.equal(ema_before[k], v) for k, v in s.ema.state_dict().items())
    assert s.scheduler.last_epoch == 0 and all(p.grad is None for p in s.raw.parameters())


def test_checkpointer_round_trips_weights_optimizer_and_step(tmp_path):
    s = _state()
    out = train_step(0, [s], [s], iter(make_loader()(0)), info=INFO, seed=1, accum=1, dtype=None)
    optimizer_step(0, [s], out, info=INFO, on_nonfinite=lambda *a: "")
    ckpt = Checkpointer(tmp_path, INFO, identity="abc", identity_fields={"x": 1}, spec_dict={}, keep_last=2)
    path = ckpt.save([s], 1, 1, {"note": "provenance"})
    fresh = _state(seed=5)
    step, extra, resumed = ckpt.resume([fresh], "auto", seed=0)
    assert (step, extra, resumed) == (1, {"note": "provenance"}, str(path))
    assert all(torch.equal(a, b) for a, b in zip(s.raw.parameters(), fresh.raw.parameters()))
    assert fresh.optimizer.state_dict()["state"].keys() == s.optimizer.state_dict()["state"].keys()


def test_checkpointer_never_sets_the_earlier_trajectory_aside_with_its_metrics(tmp_path):
    s = _state()
    ckpt = Checkpointer(
        tmp_path / "checkpoints", INFO, identity="abc", identity_fields={}, spec_dict={}, keep_last=2
    )
    ckpt.save([s], 4, 4, {})
    (tmp_path / "metrics.jsonl").write_text('{"step": 4}\n')
    step, _, resumed = ckpt.resume([_state()], "never", seed=0, set_aside_with=[tmp_path / "metrics.jsonl"])
    assert (step, resumed) == (0, None) and ckpt.paths() == []
    (moved,) = (tmp_path / "checkpoints").glob("replaced-*")
    assert (moved / "step_00000004.pt").is_file() and (moved / "metrics.jsonl").read_text() == '{"step": 4}\n'


def test_metrics_logger_writes_records_tracks_best_and_measures_throughput(tmp_path):
    logged = []

    class Recorder(NullTracker):
        def log_metrics(self, metrics, step):
            logged.append((step, dict(metrics)))

    log = MetricsLogger(
        tmp_path / "m.jsonl",
        Recorder(),
        is_main=True,
        resume_step=None,
        tokens_per_sample=10,
        higher_is_better=["val/psnr"],
    )
    log.count(8)
    record = log.step(2, {"net": 0.5}, {"net": 1.5}, {"net": 1e-3}, {"net/mae": 0.2}, first="net")
    assert (
        record["loss"] == 0.5
        and record["grad_norm"] == 1.5
        and record["tokens_per_s"] == 10 * record["samples_per_s"]
    )
    log.eval(2, {"val/psnr": 20.0})
    log.eval(4, {"val/psnr": 18.0})
    log.step(4, {"net": 0.25}, {"net": 1.0}, {"net": 1e-3}, {}, first="net")
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 2, 4, 4]
    assert log.best == {"loss": {"value": 0.25, "step": 4}, "val/psnr": {"value": 20.0, "step": 2}}
    assert logged[0][0] == 2 and "step" not in logged[0][1]
