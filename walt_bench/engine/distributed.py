"""Process groups, devices, seeding and module wrapping (DDP / FSDP2) for ``torchrun`` launches.

One process per device. Under ``torchrun`` the environment carries ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; without it everything runs as a single process (world size 1, no process group).
Backend: NCCL on CUDA, gloo on CPU.

    torchrun --nproc_per_node 8 -m walt_bench train --spec experiments/tables/ucf101.yaml
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from walt_bench.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, its ``device`` and the backend in use."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError("run.device: got 'cuda' but no CUDA device is visible; use 'cpu' or 'auto'.")
        return torch.device("cuda", local_rank)
    if device == "cpu":
        return torch.device("cpu")
    raise UserError(f"run.device: got {device!r}; expected 'auto', 'cpu' or 'cuda'.")


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group (if launched by it and not joined yet) and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    backend = None
    if world_size > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
        backend = dist.get_backend()
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def shutdown_distributed() -> None:
    """Leave the process group (call once at the very end of a ``torchrun`` entry point)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` launch (or a single process): the one that prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, e.g. ``derive_seed(run_seed, rank, step)``: stable across platforms."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA). Build models after this with the *same* seed on
    every rank so replicas start identical; the engine then reseeds each rank with its own seed."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def micro_batch_size(global_batch: int, world_size: int, grad_accum_steps: int) -> int:
    """Per-rank loader batch so that ``world_size * grad_accum_steps * micro == global_batch``."""
    denom = world_size * grad_accum_steps
    if global_batch % denom:
        raise UserError(
            f"train.batch_size: got {global_batch}, which is not divisible by world_size ({world_size}) x "
            f"train.grad_accum_steps ({grad_accum_steps}); choose a multiple of {denom}."
        )
    return global_batch // denom


def wrap_module(
    module: nn.Module, info: DistInfo, parallel: str, find_unused_parameters: bool = False
) -> nn.Module:
    """Wrap a (device-resident) module for data-parallel training; returns it unchanged when not distributed.

    ``ddp``: ``DistributedDataParallel`` (broadcasts rank 0's weights at construction).
    ``fsdp``: FSDP2 ``fully_shard`` applied to each unit of ``module.fsdp_units()`` (each W.A.L.T layer, each
    tokenizer block and resampler) if the module defines it, then to the root, all on one 1-D mesh of the
    process's device type; the module is sharded in place and returned. Each unit's parameters are then
    DTensors sharded on dim 0 across the ranks, all-gathered just before that unit runs and freed after it,
    so peak parameter memory is the root's plus about one unit's, not the whole model's.
    """
    if not info.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
    if parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        # Start from rank 0's weights, as DDP does, so every rank shards the same model.
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)
        mesh = init_device_mesh(info.device.type, (info.world_size,))
        units = module.fsdp_units() if hasattr(module, "fsdp_units") else []
        for unit in units:  # innermost first: a unit's parameters leave the root's group
            fully_shard(unit, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module
    raise UserError(f"train.parallel: got {parallel!r}; expected 'ddp' or 'fsdp'.")


def unwrap(module: nn.Module) -> nn.Module:
    """The user's module inside a DDP wrapper (FSDP2 shards in place, so it is already the module)."""
    return module.module if hasattr(module, "module") and hasattr(module, "no_sync") else module


def set_grad_sync(module: nn.Module, enabled: bool):
    """A context in which backward passes do (``enabled``) or do not all-reduce gradients.

    Used for accumulation micro-steps and for modules that are not being trained in a loss. Returns: DDP's ``no_sync()`` when disabling, FSDP2's
    ``set_requires_gradient_sync`` toggled, or a null context for plain modules.
    """
    import contextlib

    if enabled:
        return contextlib.nullcontext()
    if hasattr(module, "no_sync") and hasattr(module, "module"):
        return module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):

        @contextlib.contextmanager
        def _fsdp_no_sync():
            module.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                module.set_requires_gradient_sync(True)

        return _fsdp_no_sync()
    return contextlib.nullcontext()


def all_gather_objects(obj, info: DistInfo) -> list:
    """``[obj from rank 0, obj from rank 1, ...]`` on every rank (``[obj]`` when not distributed)."""
    if not info.distributed:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def any_true(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
