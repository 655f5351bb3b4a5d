"""Run by tests/test_sharding_fsdp.py under ``python -m torch.distributed.run --nproc_per_node 2``.

Trains the tiny W.A.L.T denoiser and the tiny tokenizer for a few AdamW steps with DDP and with FSDP2
(``wrap_module``, gloo, CPU) on the same per-rank batches; records how FSDP2 sharded each unit and both loss
sequences. Usage: sharding_fsdp_script.py OUT_DIR
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from walt_bench.engine.distributed import init_distributed, shutdown_distributed, wrap_module
from walt_bench.spec import load_spec

STEPS = 4
SPEC = [
    "data.num_frames=5",
    "data.height=16",
    "data.width=16",
    "data.num_classes=3",
    "model.size=tiny",
    "model.st_window=full",
    "tokenizer.channels=4",
    "tokenizer.channel_multipliers=[1,2]",
    "tokenizer.f_s=2",
    "tokenizer.f_t=2",
    "tokenizer.num_groups=2",
    "tokenizer.num_res_blocks=1",
    "run.device=cpu",
]


def sharding(units) -> list[dict]:
    """For each unit: is it an FSDP module, and how is each of its own parameters laid out."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor, Shard

    out = []
    for unit in units:
        params = list(unit.parameters())
        out.append(
            {
                "fsdp": isinstance(unit, FSDPModule),
                "dtensor_shard0": all(
                    isinstance(p, DTensor) and p.placements == (Shard(0),) and p.device_mesh.size() == 2
                    for p in params
                ),
                "local": sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params),
                "full": sum(p.numel() for p in params),
            }
        )
    return out


def train(model, parallel, info, batch_fn, loss_fn):
    wrapped = wrap_module(model, info, parallel)
    opt = torch.optim.AdamW(wrapped.parameters(), lr=1e-3)
    losses = []
    for step in range(STEPS):
        loss = loss_fn(wrapped, batch_fn(step, info.rank))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(mean.item() / info.world_size)
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p.detach().clone() for p in model.parameters()]
    return wrapped, losses, full


def walt_case(spec, info):
    from walt_bench.diffusion.train import build_model

    torch.manual_seed(0)
    model = build_model(spec)
    t, h, w = spec.latent_shape
    c = spec.tokenizer.latent_channels

    def batch(step, rank):
        g = torch.Generator().manual_seed(1000 * step + rank)
        return {
            "z": torch.randn(2, t, c, h, w, generator=g),
            "t": torch.rand(2, generator=g),
            "y": torch.randint(0, 3, (2,), generator=g),
            "v": torch.randn(2, t, c, h, w, generator=g),
        }

    def loss(m, b):
        return F.mse_loss(m(b["z"], b["t"], class_labels=b["y"]), b["v"])

    return model, batch, loss, lambda m: list(m.denoiser.layers)


def tokenizer_case(spec, info):
    from walt_bench.tokenizer.model import CausalAutoencoder

    torch.manual_seed(0)
    model = CausalAutoencoder(spec.tokenizer)

    def batch(step, rank):
        g = torch.Generator().manual_seed(1000 * step + rank)
        return {"video": torch.rand(2, 5, 3, 16, 16, generator=g) * 2 - 1, "seed": 77 * step + rank}

    def loss(m, b):
        x_hat, _ = m(b["video"], generator=torch.Generator().manual_seed(b["seed"]))
        return F.mse_loss(x_hat, b["video"])

    return model, batch, loss, lambda m: m.fsdp_units()


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    spec = load_spec(Path("experiments/base/default.yaml"), SPEC)
    results = {}
    try:
        for name, case in (("walt", walt_case), ("tokenizer", tokenizer_case)):
            model, batch, loss, units = case(spec, info)
            ddp_model = copy.deepcopy(model)
            _, ddp_losses, ddp_full = train(ddp_model, "ddp", info, batch, loss)
            fsdp, fsdp_losses, fsdp_full = train(model, "fsdp", info, batch, loss)
            results[name] = {
                "units": sharding(units(fsdp)),
                "root": sharding([fsdp])[0]["fsdp"],
                "ddp_losses": ddp_losses,
                "fsdp_losses": fsdp_losses,
                "max_param_diff": max((a - b).abs().max().item() for a, b in zip(ddp_full, fsdp_full)),
            }
    finally:
        shutdown_distributed()
    torch.save(results, out / f"rank{info.rank}.pt")


if __name__ == "__main__":
    main()
