"""Run by tests/test_engine_ddp.py under ``python -m torch.distributed.run --nproc_per_node 2``.

Trains the tiny net with DDP and FSDP2 (gloo, CPU), a two-part GAN-style run with DDP and a
stopped-and-resumed DDP run, then saves each
rank's final full parameters and rank 0's logged losses for the test to compare.
Usage: engine_ddp_script.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from engine_tiny import TinyNet, configs, make_loader, tiny_train

from walt_bench.engine.distributed import init_distributed, shutdown_distributed
from walt_bench.engine.loop import Part
from walt_bench.engine.rundir import read_metrics


def plain_loss(batch, ctx):
    return ((ctx.modules["net"](batch["x"]) - batch["y"]) ** 2).mean()


def full_params(module):
    return [p.full_tensor() if hasattr(p, "full_tensor") else p.detach().clone() for p in module.parameters()]


def run(out: Path, name: str, parallel: str, dropout: float, stop_at=None):
    info = init_distributed("cpu")
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(
        out, name=name, steps=6, ckpt_every=3, parallel=parallel
    )
    torch.manual_seed(0)  # the same init on every rank
    net = TinyNet(dropout=dropout)
    return tiny_train(
        [Part("net", net, plain_loss)],
        make_loader(batch=4, seed=0, rank=info.rank),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="0123456789ab",
        stop_at_step=stop_at,
        progress=False,
    )


def run_gan(out: Path):
    """Two parts under DDP: the discriminator (from step 2) is run inside the generator's loss."""
    info = init_distributed("cpu")
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(out, name="gan", steps=4, ema=False)
    torch.manual_seed(0)
    gen, disc = torch.nn.Linear(4, 1), torch.nn.Linear(1, 1)

    def g_loss(batch, ctx):
        fake = ctx.modules["gen"](batch["x"])
        ctx.state["fake"] = fake.detach()
        return ((fake - batch["y"]) ** 2).mean() - 0.1 * ctx.modules["disc"](fake).mean()

    def d_loss(batch, ctx):
        d = ctx.modules["disc"]
        return d(ctx.state["fake"]).mean() - d(batch["y"]).mean()  # two forwards, one backward

    parts = [Part("gen", gen, g_loss), Part("disc", disc, d_loss, start_step=2)]
    tiny_train(
        parts,
        make_loader(batch=4, seed=0, rank=info.rank),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="0123456789ab",
        progress=False,
    )
    return full_params(gen) + full_params(disc)


def main(out: Path) -> None:
    results = {}
    for parallel in ("ddp", "fsdp"):
        r = run(out, parallel, parallel, dropout=0.0)
        results[parallel] = full_params(r.modules["net"])
    run(out, "fsdp-split", "fsdp", dropout=0.0, stop_at=3)  # FSDP2 checkpoint written from shards ...
    results["fsdp-resumed"] = full_params(
        run(out, "fsdp-split", "fsdp", dropout=0.0).modules["net"]
    )  # ... and read
    results["gan"] = run_gan(out)
    run(out, "split", "ddp", dropout=0.5, stop_at=3)
    resumed = run(out, "split", "ddp", dropout=0.5)
    full = run(out, "whole", "ddp", dropout=0.5)
    rank = dist.get_rank()
    record = {"params": results, "world_size": dist.get_world_size()}
    if rank == 0:
        record["resumed_losses"] = [m["loss"] for m in read_metrics(resumed.run_dir / "metrics.jsonl")]
        record["whole_losses"] = [m["loss"] for m in read_metrics(full.run_dir / "metrics.jsonl")]
    torch.save(record, out / f"rank{rank}.pt")
    shutdown_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
