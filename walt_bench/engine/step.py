"""One optimizer step of the engine, in two halves that are tested on their own.

- :func:`train_step`: for each of ``grad_accum_steps`` micro-batches, call every active part's loss and
  back-propagate ``loss / grad_accum_steps`` into that part only; returns the summed losses and logged extras.
- :func:`optimizer_step`: clip and measure each active part's gradient norm, refuse a non-finite loss or norm
  (:class:`NonFiniteStep`, raised on every rank after zeroing the gradients, before any parameter, optimizer,
  scheduler or EMA state changes), then step the optimizers, schedulers and EMAs. The loop decides whether to
  skip the refused step or to stop (``train.max_bad_steps``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from walt_bench.engine.distributed import DistInfo, any_true, derive_seed, set_grad_sync
from walt_bench.errors import UserError


class NonFiniteLossError(UserError):
    """Too many steps had a NaN/Inf loss or gradient norm; the run stopped, the last good checkpoint is kept."""


class NonFiniteStep(Exception):
    """One optimizer step was refused: ``step`` is its 1-based number (``ctx.step + 1``, as metrics.jsonl and
    checkpoints count), ``values`` its losses and gradient norms, ``parts`` the parts whose loss or norm is not
    finite. Nothing changed but the (zeroed) gradients."""

    def __init__(self, step: int, values: dict[str, float], parts: list[str]):
        self.step, self.values, self.parts = step, values, parts
        super().__init__(
            f"non-finite loss or gradient at step {step} (ctx.step {step - 1}) in part(s) {', '.join(parts)}: "
            f"{values}"
        )


@dataclass
class StepContext:
    """What a loss function may use besides the batch (see ``engine/loop.py``)."""

    step: int
    micro_step: int
    grad_accum_steps: int
    generator: torch.Generator
    modules: dict[str, nn.Module]
    raw: dict[str, nn.Module]
    state: dict[str, Any]
    device: torch.device
    rank: int
    world_size: int
    autocast_dtype: torch.dtype | None


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]  # part -> loss summed over micro-batches (each / grad_accum_steps)
    extras: dict[str, torch.Tensor] = field(
        default_factory=dict
    )  # "<part>/<name>" -> mean over micro-batches
    samples: int = 0  # examples this rank consumed


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_size_of(batch: Any) -> int:
    """Leading dimension of the first tensor in a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = (
        batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, list | tuple) else []
    )
    for v in values:
        n = batch_size_of(v)
        if n:
            return n
    return 0


@contextlib.contextmanager
def only_trains(active: Any, states: Sequence[Any], sync: bool):
    """Freeze other parts' parameters and switch off their (and, mid-accumulation, our) gradient sync."""
    frozen = []
    with contextlib.ExitStack() as stack:
        for s in states:
            if s is active:
                stack.enter_context(set_grad_sync(s.wrapped, sync))
                continue
            stack.enter_context(set_grad_sync(s.wrapped, False))
            for p in s.raw.parameters():
                if p.requires_grad:
                    p.requires_grad_(False)
                    frozen.append(p)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)


def train_step(
    step: int,
    active: Sequence[Any],
    states: Sequence[Any],
    loader: Iterator[Any],
    *,
    info: DistInfo,
    seed: int,
    accum: int,
    dtype: torch.dtype | None,
) -> StepOutput:
    """Forward and backward passes of one optimizer step (``accum`` micro-batches); no parameter changes."""
    modules = {s.part.name: s.wrapped for s in states}
    raws = {s.part.name: s.raw for s in states}
    out = StepOutput({s.part.name: torch.zeros((), device=info.device) for s in active})
    for micro in range(accum):
        try:
            batch = next(loader)
        except StopIteration:
            raise UserError(
                f"the data loader ran out at step {step}; make_loader must return an infinite iterable"
            ) from None
        batch = to_device(batch, info.device)
        out.samples += batch_size_of(batch)
        gen = torch.Generator(info.device).manual_seed(derive_seed(seed, info.rank, step, micro))
        ctx = StepContext(
            step, micro, accum, gen, modules, raws, {}, info.device, info.rank, info.world_size, dtype
        )
        for s in active:
            with only_trains(s, states, sync=micro == accum - 1):
                amp = torch.autocast(info.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
                with amp:
                    result = s.part.loss_fn(batch, ctx)
                loss, scalars = result if isinstance(result, tuple) else (result, {})
                (loss.float() / accum).backward()
            out.losses[s.part.name] += loss.detach().float() / accum
            for k, v in scalars.items():
                key = f"{s.part.name}/{k}"
                v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                out.extras[key] = out.extras.get(key, 0) + v.to(info.device) / accum
    return out


def grad_norm(params: list[nn.Parameter], clip: float) -> torch.Tensor:
    """Global L2 norm of the gradients, clipped to ``clip`` when ``clip > 0`` (the norm before clipping)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
    else:
        norm = torch.nn.utils.get_total_norm(grads)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def optimizer_step(
    step: int, active: Sequence[Any], out: StepOutput, *, info: DistInfo
) -> tuple[dict[str, float], dict[str, float]]:
    """Clip, check and apply the gradients of ``out``; returns (grad norms, learning rates) per part.

    A non-finite loss or gradient norm on any rank zeroes the gradients and raises :class:`NonFiniteStep`
    (on every rank); no parameter, optimizer, scheduler or EMA state changes.
    """
    norms = {
        s.part.name: grad_norm(list(s.raw.parameters()), s.cfg.grad_clip).to(info.device) for s in active
    }
    check = torch.stack(list(out.losses.values()) + list(norms.values()))
    if any_true(not bool(torch.isfinite(check).all()), info):
        values = {k: float(v) for k, v in out.losses.items()}
        values.update({f"{k}/grad_norm": float(n) for k, n in norms.items()})
        bad = [
            s.part.name
            for s in active
            if not (math.isfinite(values[s.part.name]) and math.isfinite(values[f"{s.part.name}/grad_norm"]))
        ]
        for s in active:
            s.optimizer.zero_grad(set_to_none=True)
        raise NonFiniteStep(step + 1, values, bad or ["(another rank)"])
    lrs = {s.part.name: s.optimizer.param_groups[0]["lr"] for s in active}
    for s in active:
        s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
        s.scheduler.step()
        if s.ema is not None:
            s.ema.update(s.raw, step)
    return {k: float(v) for k, v in norms.items()}, lrs
