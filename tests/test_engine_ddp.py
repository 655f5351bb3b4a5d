"""Two CPU processes under torchrun (gloo): DDP and FSDP2 keep replicas equal, match one process
averaging the same batches, and resume exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from engine_tiny import TinyNet, configs, make_loader, tiny_train

from walt_bench.engine.loop import Part

HERE = Path(__file__).parent


def single_process_reference(tmp_path):
    """One process, 2 accumulation micro-batches = rank 0's batch then rank 1's batch."""
    rank0, rank1 = make_loader(batch=4, seed=0, rank=0), make_loader(batch=4, seed=0, rank=1)

    def both(start):
        a, b = rank0(start // 2), rank1(start // 2)
        while True:
            yield next(a)
            yield next(b)

    def plain_loss(batch, ctx):
        return ((ctx.modules["net"](batch["x"]) - batch["y"]) ** 2).mean()

    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=6, grad_accum_steps=2, ema=False)
    torch.manual_seed(0)
    result = tiny_train(
        [Part("net", TinyNet(dropout=0.0), plain_loss)],
        both,
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="f" * 12,
        progress=False,
    )
    return [p.detach() for p in result.modules["net"].parameters()]


def test_two_process_gloo_training_agrees_across_ranks_and_with_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        str(HERE / "engine_ddp_script.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world_size"] == 2
    reference = single_process_reference(tmp_path / "ref")
    for mode in ("ddp", "fsdp"):
        for a, b, ref in zip(r0["params"][mode], r1["params"][mode], reference):
            assert torch.equal(a, b), mode  # replicas identical
            torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-6)  # = averaging both ranks' batches
    for a, b in zip(r0["params"]["fsdp"], r0["params"]["fsdp-resumed"]):
        assert torch.equal(a, b)  # FSDP2 stop at step 3 + resume = uninterrupted FSDP2 run
    for a, b in zip(r0["params"]["gan"], r1["params"]["gan"]):
        assert torch.equal(a, b)  # generator and discriminator replicas identical
    assert len(r0["whole_losses"]) == 6
    assert r0["resumed_losses"] == r0["whole_losses"]  # per-rank dropout RNG restored exactly
    ckpts = sorted(p.name for p in (tmp_path / "whole-0123456789ab" / "checkpoints").iterdir())
    assert ckpts == ["step_00000003.pt", "step_00000006.pt"]
