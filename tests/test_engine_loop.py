"""The training loop: run directory, metrics, NaN guard, accumulation, multi-part (GAN) updates."""

from __future__ import annotations

import json

import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine.checkpoint import load_checkpoint
from walt_bench.engine.loop import NonFiniteLossError, Part, autocast_dtype
from walt_bench.engine.rundir import read_metrics
from walt_bench.errors import UserError


def run(tmp_path, parts=None, loader=None, spec_hash="aaaaaaaaaaaa", **overrides):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, **overrides)
    torch.manual_seed(0)
    parts = parts or [Part("net", TinyNet(), regression_loss)]
    return tiny_train(
        parts,
        loader or make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=spec_hash,
        progress=False,
    )


def test_run_directory_holds_spec_metrics_checkpoints_and_summary(tmp_path):
    result = run(tmp_path)
    d = result.run_dir
    assert d.name == "tiny-aaaaaaaaaaaa"
    assert (d / "spec.yaml").read_text().startswith("train:")
    records = read_metrics(d / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 9))
    assert {"loss", "lr", "grad_norm", "samples_per_s", "net/mae"} <= set(records[0])
    summary = json.loads((d / "summary.json").read_text())
    assert summary["final_step"] == 8 and summary["status"] == "finished"
    assert summary["final_loss"] == records[-1]["loss"]
    assert summary["identity"] == "aaaaaaaaaaaa"
    assert [p.rsplit("/", 1)[1] for p in summary["checkpoints"]] == ["step_00000004.pt", "step_00000008.pt"]
    assert summary["best_metrics"]["loss"]["value"] == min(r["loss"] for r in records)


def test_logged_lr_follows_warmup_then_cosine(tmp_path):
    result = run(tmp_path, steps=6, warmup_steps=2)
    lrs = [r["lr"] for r in read_metrics(result.run_dir / "metrics.jsonl")]
    assert lrs[:2] == pytest.approx([0.5e-2, 1e-2])
    assert lrs[2] == pytest.approx(1e-2) and lrs[-1] < lrs[3] < lrs[2]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    def exploding(batch, ctx):
        loss, _ = regression_loss(batch, ctx)
        return loss * float("nan") if ctx.step == 5 else loss

    with pytest.raises(NonFiniteLossError, match=r"step 6 \(ctx.step 5\) in part\(s\) net") as info:
        run(tmp_path, parts=[Part("net", TinyNet(), exploding)], ckpt_every=2, max_bad_steps=0)
    assert isinstance(info.value, UserError)
    d = tmp_path / "tiny-aaaaaaaaaaaa"
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "nonfinite_loss" and summary["last_checkpoint"].endswith("step_00000004.pt")
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["step_00000002.pt", "step_00000004.pt"]


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    def plain(batch, ctx):  # no noise, no dropout: the two set-ups see the same 8 samples per step
        return ((ctx.modules["net"](batch["x"]) - batch["y"]) ** 2).mean()

    big_loader, small_loader = make_loader(batch=8), make_loader(batch=4)

    def halves(start):  # the 8-sample batch i split into two micro-batches of 4, in order
        it = big_loader(start // 2)
        for b in it:
            yield {k: v[:4] for k, v in b.items()}
            yield {k: v[4:] for k, v in b.items()}

    del small_loader
    torch.manual_seed(0)
    a = run(tmp_path / "a", parts=[Part("net", TinyNet(dropout=0.0), plain)], loader=big_loader, steps=5)
    torch.manual_seed(0)
    b = run(
        tmp_path / "b",
        parts=[Part("net", TinyNet(dropout=0.0), plain)],
        loader=halves,
        steps=5,
        grad_accum_steps=2,
    )
    for pa, pb in zip(a.modules["net"].parameters(), b.modules["net"].parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_second_part_waits_for_its_start_step_and_gets_no_gradient_from_the_first(tmp_path):
    seen = []

    def g_loss(batch, ctx):
        out = ctx.modules["gen"](batch["x"])
        ctx.state["fake"] = out.detach()
        score = ctx.modules["disc"](out).mean()  # adversarial term runs the discriminator
        for p in ctx.raw["disc"].parameters():
            assert not p.requires_grad
        return ((out - batch["y"]) ** 2).mean() - 0.1 * score

    def d_loss(batch, ctx):
        seen.append(ctx.step)
        return ctx.modules["disc"](ctx.state["fake"]).mean() - ctx.modules["disc"](batch["y"]).mean()

    torch.manual_seed(0)
    gen, disc = torch.nn.Linear(4, 1), torch.nn.Linear(1, 1)
    disc_init = [p.detach().clone() for p in disc.parameters()]
    parts = [
        Part("gen", gen, g_loss, ema=False),
        Part("disc", disc, d_loss, start_step=3, ema=False, optim={"lr": 1e-3, "optimizer": "adam"}),
    ]
    result = run(tmp_path, parts=parts, steps=6)
    assert seen == [3, 4, 5]
    assert not all(torch.equal(a, b) for a, b in zip(disc_init, disc.parameters()))
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert "disc/loss" not in records[2] and "disc/loss" in records[3]
    assert records[3]["disc/lr"] == pytest.approx(1e-3 * 0.5)  # its own warmup, started at step 3


def test_exhausted_loader_is_a_user_error(tmp_path):
    def finite(start):
        return iter([{"x": torch.zeros(2, 4), "y": torch.zeros(2, 1)}] * 2)

    with pytest.raises(UserError, match="ran out at step 2"):
        run(tmp_path, loader=finite)


def test_precision_auto_is_bf16_on_cuda_and_fp32_on_cpu():
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("auto", torch.device("cuda", 0)) is torch.bfloat16
    assert autocast_dtype("fp32", torch.device("cuda", 0)) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16


def test_bf16_autocast_runs_the_loss_in_bf16_and_keeps_fp32_weights(tmp_path):
    dtypes = []

    def loss(batch, ctx):
        pred = ctx.modules["net"](batch["x"])
        dtypes.append(pred.dtype)
        return ((pred.float() - batch["y"]) ** 2).mean()

    result = run(tmp_path, parts=[Part("net", TinyNet(), loss)], steps=2, precision="bf16")
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert result.modules["net"].fc1.weight.dtype is torch.float32


def test_activation_checkpointing_flag_reaches_the_model(tmp_path):
    result = run(tmp_path, steps=1, activation_checkpointing=True)
    assert result.modules["net"].activation_checkpointing is True


def test_trainer_flags_parse():
    import argparse

    from walt_bench.engine.args import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--resume", "never", "--allow-spec-mismatch", "--stop-at-step", "5"])
    assert (args.resume, args.allow_spec_mismatch, args.stop_at_step) == ("never", True, 5)
    assert parser.parse_args([]).resume == "auto"


@pytest.mark.gpu
def test_cuda_run_autocasts_to_bf16_with_fused_adamw(tmp_path):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=3, precision="auto")
    run_cfg.device = "cuda"
    dtypes = []

    def loss(batch, ctx):
        pred = ctx.modules["net"](batch["x"])
        dtypes.append((pred.dtype, pred.device.type))
        return ((pred.float() - batch["y"]) ** 2).mean()

    result = tiny_train(
        [Part("net", TinyNet(), loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="9" * 12,
        progress=False,
    )
    assert dtypes == [(torch.bfloat16, "cuda")] * 3
    assert result.summary["final_metrics"]["peak_mem_gib"] > 0
    assert load_checkpoint(result.summary["last_checkpoint"])["rng"][0]["cuda"]


def test_eval_metrics_are_logged_and_best_values_kept_in_the_summary(tmp_path):
    scores = {2: 30.0, 4: 10.0, 6: 20.0}

    def evaluate(step, modules, emas):
        assert set(modules) == {"net"} and set(emas) == {"net"}
        return {"fvd": scores[step], "is": scores[step]}

    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=6)
    result = tiny_train(
        [Part("net", TinyNet(), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="7" * 12,
        progress=False,
        eval_fn=evaluate,
        eval_every=2,
        higher_is_better=("is",),
    )
    best = result.summary["best_metrics"]
    assert best["fvd"] == {"value": 10.0, "step": 4} and best["is"] == {"value": 30.0, "step": 2}
    evals = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if "fvd" in r]
    assert [(r["step"], r["fvd"]) for r in evals] == [(2, 30.0), (4, 10.0), (6, 20.0)]
