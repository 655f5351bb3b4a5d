"""Tiny seeded stand-ins shared by the engine tests and the torchrun script (not a test module)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from walt_bench.engine.config import TrainConfig
from walt_bench.tracking.config import TrackingConfig

DIM = 4


class TinyNet(nn.Module):
    """Linear -> GELU -> dropout -> Linear: dropout draws from the global torch RNG."""

    def __init__(self, dropout: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(DIM, 8)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(8, 1)
        self.activation_checkpointing = False

    def forward(self, x):
        return self.fc2(self.drop(torch.nn.functional.gelu(self.fc1(x))))


def make_loader(batch: int = 4, seed: int = 0, rank: int = 0):
    """Factory ``start -> infinite iterator``; batch ``i`` depends only on (seed, rank, i)."""

    def factory(start: int):
        def gen():
            i = start
            while True:
                g = torch.Generator().manual_seed(seed * 1_000_003 + rank * 10_007 + i)
                x = torch.randn(batch, DIM, generator=g)
                yield {"x": x, "y": x.sum(dim=1, keepdim=True).sin()}
                i += 1

        return gen()

    return factory


def regression_loss(batch, ctx):
    """MSE with input noise drawn from the per-step generator."""
    x = batch["x"] + 0.1 * torch.randn(batch["x"].shape, generator=ctx.generator, device=ctx.device)
    pred = ctx.modules["net"](x)
    loss = ((pred - batch["y"]) ** 2).mean()
    return loss, {"mae": (pred - batch["y"]).abs().mean()}


def configs(tmp_path, name: str = "tiny", **train_overrides):
    base = dict(
        steps=8,
        batch_size=4,
        lr=1e-2,
        warmup_steps=2,
        log_every=1,
        ckpt_every=4,
        keep_last=3,
        ema=True,
        ema_decay=0.9,
        grad_clip=1.0,
        precision="fp32",
    )
    base.update(train_overrides)
    train_cfg = TrainConfig(**base)
    run_cfg = SimpleNamespace(name=name, seed=7, out_dir=str(tmp_path), device="cpu")
    spec_dict = {"train": train_cfg.model_dump(mode="json"), "run": {"name": name, "seed": 7}}
    return train_cfg, run_cfg, TrackingConfig(enabled=False), spec_dict


def tiny_train(parts, loader, *, train_cfg, run_cfg, spec_dict, spec_hash, tracking_cfg=None, **kw):
    """``engine.loop.train`` in ``<out_dir>/<name>-<spec_hash>`` with identity ``spec_hash`` (the fields behind it:
    the flattened ``spec_dict``) and an MLflow tracker when ``tracking_cfg`` is enabled."""
    from pathlib import Path

    from walt_bench.engine.loop import train
    from walt_bench.tracking.mlflow import make_tracker

    fields = {f"{section}.{k}": v for section, values in spec_dict.items() for k, v in values.items()}
    tracker = make_tracker(
        tracking_cfg, run_name=run_cfg.name, params=spec_dict, tags={"identity": spec_hash}
    )
    return train(
        parts,
        loader,
        train_cfg=train_cfg,
        run_dir=Path(run_cfg.out_dir) / f"{run_cfg.name}-{spec_hash}",
        seed=run_cfg.seed,
        device=run_cfg.device,
        identity=spec_hash,
        identity_fields=fields,
        spec_dict=spec_dict,
        tracker=tracker,
        **kw,
    )
