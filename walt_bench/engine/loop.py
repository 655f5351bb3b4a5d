"""The one training loop both trainers use: the tokenizer GAN and the diffusion model.

A trainer hands :func:`train` a list of :class:`Part` s -- each one module with its own optimizer,
LR schedule, optional EMA and a *loss function* -- plus a loader factory. The loop owns everything
else: devices, DDP/FSDP2, bf16 autocast, gradient accumulation and clipping, optimizer/scheduler/EMA
steps, the NaN guard, checkpoints, exact resume, metrics.jsonl, summary.json, tqdm and MLflow.

Each optimizer step, for each of ``train.grad_accum_steps`` micro-batches, the loop calls every
*active* part's ``loss_fn(batch, ctx)`` in list order and back-propagates ``loss / grad_accum_steps``
into that part's parameters only (the other parts' parameters are frozen meanwhile, so a generator
loss that runs the discriminator gives it no gradient). After the micro-batches each active part's
gradients are clipped and its optimizer, scheduler and EMA step. A part with ``start_step=k`` is
inactive (its loss is not even called) before step ``k``; its LR schedule starts at ``k``.

``loss_fn(batch, ctx)`` returns a scalar loss, or ``(loss, {"name": value, ...})`` with extra scalars to
log as ``<part>/<name>``. ``batch`` is the loader's item moved to the device. ``ctx`` is a
:class:`StepContext`: ``ctx.step`` (0-based optimizer step), ``ctx.modules[name]`` (the wrapped module to
call), ``ctx.raw[name]`` (the plain module, for attributes), ``ctx.generator`` (a torch.Generator on the
device, seeded from (seed, rank, step, micro-step): draw all noise/dropout masks/timesteps from it and
resume is exact), ``ctx.state`` (a dict shared by the parts within one micro-batch, e.g. the generator's
output for the discriminator).

Always call ``ctx.modules[name]`` (not the module object you passed in): under DDP that is the wrapper
that synchronises gradients. The global RNGs (python, numpy, torch, CUDA) are per-rank seeded and
restored on resume too, so ``nn.Dropout`` stays exact; ``ctx.generator`` is the explicit way.

Diffusion model (one part with EMA)::

    from walt_bench.engine.loop import Part, train
    from walt_bench.engine.distributed import init_distributed, micro_batch_size, seed_everything

    info = init_distributed(spec.run.device)            # idempotent; train() calls it too
    seed_everything(spec.run.seed)                       # same init on every rank
    model = WALT(spec.model, latent_channels=..., latent_size=spec.latent_shape, num_classes=...)
    micro = micro_batch_size(spec.train.batch_size, info.world_size, spec.train.grad_accum_steps)

    def diffusion_loss(batch, ctx):
        z0 = batch["latent"]
        t = torch.rand(z0.shape[0], device=z0.device, generator=ctx.generator)
        noise = torch.randn(z0.shape, device=z0.device, generator=ctx.generator)
        v_hat = ctx.modules["denoiser"](z_t(z0, noise, t), t, class_labels=batch["label"])
        return ((v_hat - v_target(z0, noise, t)) ** 2).mean()

    result = train(
        [Part("denoiser", model, diffusion_loss)],        # EMA follows train.ema
        lambda start: build_loader(spec.data, micro, seed=spec.run.seed, rank=info.rank,
                                   world_size=info.world_size, start_step=start),
        train_cfg=spec.train, run_cfg=spec.run, tracking_cfg=spec.tracking,
        spec_dict=spec.to_dict(), spec_hash=spec.hash, resume=args.resume,
        allow_spec_mismatch=args.allow_spec_mismatch, flops_per_sample=model_info(model)["flops_per_sample"])
    result.run_dir, result.summary, result.emas["denoiser"]   # EMA weights: result.emas[...].copy_to(m)

Tokenizer GAN (two parts, own optimizers, discriminator from step ``disc_start``)::

    def g_loss(batch, ctx):
        recon = ctx.modules["generator"](batch["video"])
        ctx.state["recon"] = recon.detach()
        loss = l1(recon, batch["video"]) + perceptual(recon, batch["video"])
        if ctx.step >= disc_start:
            loss = loss + adv_weight * generator_adv_loss(ctx.modules["discriminator"](recon))
        return loss, {"recon": l1(recon, batch["video"])}

    def d_loss(batch, ctx):
        real, fake = batch["video"], ctx.state["recon"]
        logits = ctx.modules["discriminator"](torch.cat([real, fake]))
        return hinge_d_loss(*logits.chunk(2))

    train([Part("generator", autoencoder, g_loss, ema=False),
           Part("discriminator", disc, d_loss, start_step=disc_start, ema=False, optim={"lr": 1e-4})],
          make_loader, train_cfg=..., run_cfg=..., tracking_cfg=..., spec_dict=..., spec_hash=...)

``make_loader(start_batch)`` must return an iterable of micro-batches for *this rank* that skips the
first ``start_batch`` of them: the loop passes ``step * grad_accum_steps`` (0 on a fresh start), i.e. the
data contract's ``build_loader(..., rank, world_size, start_step=start_batch)`` with the micro-batch size
from :func:`walt_bench.engine.micro_batch_size`. Run with ``python -m ...`` for one process or
``torchrun --nproc_per_node N ...`` for DDP/FSDP2. A non-finite loss or gradient norm raises
:class:`NonFiniteLossError` (a ``UserError``: the CLI prints it and exits 2) and keeps the last good
checkpoint. Checkpoints, metrics and MLflow are written by rank 0 only.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from walt_bench.engine import checkpoint as ckpt_io
from walt_bench.engine.config import TrainConfig
from walt_bench.engine.distributed import (
    DistInfo,
    all_gather_objects,
    any_true,
    barrier,
    derive_seed,
    init_distributed,
    seed_everything,
    set_grad_sync,
    wrap_module,
)
from walt_bench.engine.ema import EMA
from walt_bench.engine.optim import build_optimizer, build_scheduler
from walt_bench.engine.rundir import MetricsLog, prepare_run_dir, run_dir_for, versions, write_json_atomic
from walt_bench.engine.throughput import mfu, peak_flops, peak_memory_gib
from walt_bench.errors import UserError

LossOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, Any]]


class NonFiniteLossError(UserError):
    """A loss or gradient norm became NaN/Inf; the run stopped and the last good checkpoint is kept."""


@dataclass
class Part:
    """One trained module: its own optimizer, LR schedule, optional EMA and loss function.

    ``optim`` overrides ``TrainConfig`` fields for this part only (e.g. ``{"lr": 1e-4, "optimizer":
    "adam"}``); ``ema=None`` follows ``train.ema``; ``start_step`` delays the part's updates.
    """

    name: str
    module: nn.Module
    loss_fn: Callable[[Any, StepContext], LossOutput]
    start_step: int = 0
    ema: bool | None = None
    optim: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """What a loss function may use besides the batch (see the module docstring)."""

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
class TrainResult:
    run_dir: Path
    step: int
    summary: dict[str, Any]
    modules: dict[str, nn.Module]
    emas: dict[str, EMA]


@dataclass
class _PartState:
    part: Part
    cfg: TrainConfig
    raw: nn.Module
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None


# -- helpers -------------------------------------------------------------------------------------
def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on CUDA, fp32 (no autocast) on CPU; ``bf16``: bf16 anywhere; ``fp32``: none."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


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


def set_activation_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Set ``activation_checkpointing`` on every submodule that declares that attribute."""
    for m in module.modules():
        if hasattr(m, "activation_checkpointing"):
            m.activation_checkpointing = enabled


@contextlib.contextmanager
def _only_trains(active: _PartState, states: Sequence[_PartState], sync: bool):
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


def _grad_norm(params: list[nn.Parameter], clip: float) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
    else:
        norm = torch.nn.utils.get_total_norm(grads)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def _sd_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


# -- checkpoints ---------------------------------------------------------------------------------
def _save(states, info, ckpt_dir, step, data_position, spec_dict, spec_hash, extra, keep_last) -> Path | None:
    """Collective: every rank gathers full state; rank 0 writes atomically and prunes."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    parts = {}
    for s in states:
        parts[s.part.name] = {
            "model": get_model_state_dict(s.raw, options=_sd_options()),
            "optimizer": get_optimizer_state_dict(s.raw, s.optimizer, options=_sd_options()),
            "scheduler": s.scheduler.state_dict(),
            "ema": s.ema.state_dict() if s.ema is not None else None,
        }
    rng = all_gather_objects(ckpt_io.capture_rng_state(), info)
    path = None
    if info.is_main:
        obj = {
            "format": ckpt_io.FORMAT,
            "step": step,
            "data_position": data_position,
            "spec_hash": spec_hash,
            "spec": spec_dict,
            "parts": parts,
            "rng": rng,
            "world_size": info.world_size,
            "extra": extra,
        }
        path = ckpt_io.atomic_save(obj, ckpt_io.checkpoint_path(ckpt_dir, step))
        ckpt_io.prune_checkpoints(ckpt_dir, keep_last)
    barrier(info)
    return path


def _load(states, info, ckpt, path) -> None:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True)
    for s in states:
        if s.part.name not in ckpt["parts"]:
            raise ckpt_io.CheckpointError(
                f"checkpoint {path} has parts {sorted(ckpt['parts'])}; this trainer needs {s.part.name!r}."
            )
        saved = ckpt["parts"][s.part.name]
        set_model_state_dict(s.raw, saved["model"], options=opts)
        set_optimizer_state_dict(s.raw, s.optimizer, saved["optimizer"], options=opts)
        s.scheduler.load_state_dict(saved["scheduler"])
        if s.ema is not None and saved["ema"] is not None:
            s.ema.load_state_dict(saved["ema"])
        elif s.ema is not None:  # EMA switched on since: start it from the weights
            s.ema.load_state_dict(get_model_state_dict_simple(s.raw))


def get_model_state_dict_simple(module: nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_sd_options())


def _set_aside_checkpoints(ckpt_dir: Path) -> None:
    """``resume=never``: move an earlier trajectory's checkpoints to ``checkpoints/replaced-<time>/`` so
    that a later ``resume=auto`` cannot pick them up (nothing is deleted)."""
    old = ckpt_io.list_checkpoints(ckpt_dir)
    if old:
        dest = ckpt_dir / f"replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        dest.mkdir(parents=True, exist_ok=True)
        for _, p in old:
            p.rename(dest / p.name)


def _resolve_resume(resume: str, ckpt_dir: Path) -> Path | None:
    if resume == "never":
        return None
    if resume == "auto":
        return ckpt_io.latest_checkpoint(ckpt_dir)
    return Path(resume)


# -- the loop ------------------------------------------------------------------------------------
def train(
    parts: Sequence[Part],
    make_loader: Callable[[int], Iterable[Any]],
    *,
    train_cfg: TrainConfig,
    run_cfg: Any,
    tracking_cfg: Any = None,
    spec_dict: Mapping[str, Any],
    spec_hash: str,
    resume: str = "auto",
    allow_spec_mismatch: bool = False,
    tokens_per_sample: int | None = None,
    flops_per_sample: float | None = None,
    eval_fn: Callable[[int, dict[str, nn.Module], dict[str, EMA]], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    higher_is_better: Sequence[str] = (),
    stop_at_step: int | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``parts`` for ``train_cfg.steps`` optimizer steps (see the module docstring).

    ``run_cfg`` needs ``name``, ``seed``, ``out_dir`` and ``device``; ``tracking_cfg`` is a
    ``TrackingConfig`` or None (no MLflow). ``resume``: ``auto`` | ``never`` | a checkpoint path.
    ``eval_fn(step, raw_modules, emas) -> {metric: value}`` runs on every rank every ``eval_every``
    steps and at the end; its metrics are logged and tracked as best (lower is better unless named in
    ``higher_is_better``). ``stop_at_step`` ends this invocation early after that step (with a
    checkpoint), as a pre-emption would. ``resume="never"`` moves existing checkpoints of this run
    directory to ``checkpoints/replaced-<time>/``. Returns a :class:`TrainResult` (on every rank).
    """
    if not parts or len({p.name for p in parts}) != len(parts):
        raise ValueError("train() needs at least one Part and unique part names")
    info = init_distributed(run_cfg.device)
    accum = train_cfg.grad_accum_steps
    dtype = autocast_dtype(train_cfg.precision, info.device)
    run_dir = run_dir_for(run_cfg.out_dir, run_cfg.name, spec_hash)
    ckpt_dir = run_dir / "checkpoints"
    if info.is_main:
        prepare_run_dir(run_dir, spec_dict)
        if resume == "never":
            _set_aside_checkpoints(ckpt_dir)
    barrier(info)

    # 1. modules, wrappers, optimizers, schedules, EMAs (same seed on every rank until here)
    states: list[_PartState] = []
    for part in parts:
        cfg = TrainConfig.model_validate({**train_cfg.model_dump(), **dict(part.optim)})
        raw = part.module.to(info.device)
        set_activation_checkpointing(raw, train_cfg.activation_checkpointing)
        if train_cfg.compile:
            raw.compile()
        wrapped = wrap_module(raw, info, train_cfg.parallel, train_cfg.find_unused_parameters)
        opt = build_optimizer(raw.parameters(), cfg)
        sched = build_scheduler(opt, cfg, total_steps=max(1, train_cfg.steps - part.start_step))
        use_ema = train_cfg.ema if part.ema is None else part.ema
        ema = EMA(raw, train_cfg.ema_decay, train_cfg.ema_start_step) if use_ema else None
        states.append(_PartState(part, cfg, raw, wrapped, opt, sched, ema))

    # 2. resume or fresh start (per-rank seeds)
    start, extra, resumed_from = 0, {}, None
    path = _resolve_resume(resume, ckpt_dir)
    if path is not None:
        ckpt = ckpt_io.load_checkpoint(
            path, spec_dict=dict(spec_dict), spec_hash=spec_hash, allow_spec_mismatch=allow_spec_mismatch
        )
        _load(states, info, ckpt, path)
        start, extra, resumed_from = int(ckpt["step"]), dict(ckpt.get("extra") or {}), str(path)
        if ckpt["world_size"] == info.world_size:
            ckpt_io.restore_rng_state(ckpt["rng"][info.rank])
        else:
            seed_everything(derive_seed(run_cfg.seed, info.rank, start))
        del ckpt
    else:
        seed_everything(derive_seed(run_cfg.seed, info.rank))

    # 3. logging
    tracker = _start_tracker(tracking_cfg, info, run_cfg, run_dir, spec_dict, spec_hash, extra)
    extra["mlflow_run_id"] = tracker.run_id
    metrics_log = (
        MetricsLog(run_dir / "metrics.jsonl", start if resumed_from else None) if info.is_main else None
    )
    best: dict[str, dict[str, float]] = dict(extra.get("best", {}))
    checkpoints = [str(p) for _, p in ckpt_io.list_checkpoints(ckpt_dir)] if info.is_main else []
    show_bar = info.is_main if progress is None else (progress and info.is_main)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=train_cfg.steps, initial=start, disable=not show_bar, desc=run_cfg.name, dynamic_ncols=True
    )
    peak = peak_flops(info.device, dtype)
    modules = {s.part.name: s.wrapped for s in states}
    raws = {s.part.name: s.raw for s in states}
    emas = {s.part.name: s.ema for s in states if s.ema is not None}
    last_record: dict[str, Any] = {}
    status, step, t_start = "finished", start, time.perf_counter()
    window_t, window_samples, total_samples = time.perf_counter(), 0, 0
    end_step = train_cfg.steps if stop_at_step is None else min(train_cfg.steps, stop_at_step)

    def save(at: int) -> None:
        extra["best"] = best
        p = _save(
            states, info, ckpt_dir, at, at * accum, dict(spec_dict), spec_hash, extra, train_cfg.keep_last
        )
        if p is not None:
            checkpoints[:] = [str(q) for _, q in ckpt_io.list_checkpoints(ckpt_dir)]

    def finish(final_status: str) -> dict[str, Any]:
        wall = time.perf_counter() - t_start
        summary = {
            "status": final_status,
            "spec_hash": spec_hash,
            "run_dir": str(run_dir),
            "final_step": step,
            "steps": train_cfg.steps,
            "final_loss": last_record.get("loss"),
            "final_metrics": last_record,
            "best_metrics": best,
            "checkpoints": checkpoints,
            "last_checkpoint": checkpoints[-1] if checkpoints else None,
            "resumed_from": resumed_from,
            "wall_time_s": wall,
            "samples_per_s": total_samples * info.world_size / wall if wall > 0 else None,
            "tokens_per_s": total_samples * info.world_size * tokens_per_sample / wall
            if tokens_per_sample and wall > 0
            else None,
            "world_size": info.world_size,
            "mlflow_run_id": tracker.run_id,
            "versions": versions(),
        }
        if info.is_main:
            write_json_atomic(run_dir / "summary.json", summary)
            if tracking_cfg is not None and getattr(tracking_cfg, "log_artifacts", True):
                tracker.log_artifact(str(run_dir / "spec.yaml"))
                tracker.log_artifact(str(run_dir / "summary.json"))
            tracker.end("FINISHED" if final_status in ("finished", "stopped") else "FAILED")
            metrics_log.close()
        bar.close()
        return summary

    def track_best(metrics: Mapping[str, float], at: int) -> None:
        for k, v in metrics.items():
            if v is None or not math.isfinite(v):
                continue
            old = best.get(k, {}).get("value")
            if old is None or (v > old if k in higher_is_better else v < old):
                best[k] = {"value": float(v), "step": at}

    def amp():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(info.device.type, dtype=dtype)

    # 4. steps
    loader = iter(make_loader(start * accum))
    try:
        for step in range(start, end_step):
            active = [s for s in states if step >= s.part.start_step]
            loss_sum = {s.part.name: torch.zeros((), device=info.device) for s in active}
            extras_sum: dict[str, torch.Tensor] = {}
            for micro in range(accum):
                try:
                    batch = next(loader)
                except StopIteration:
                    raise UserError(
                        f"the data loader ran out at step {step}; make_loader must return an infinite iterable"
                    ) from None
                batch = to_device(batch, info.device)
                total_samples += batch_size_of(batch)
                gen = torch.Generator(info.device).manual_seed(
                    derive_seed(run_cfg.seed, info.rank, step, micro)
                )
                ctx = StepContext(
                    step, micro, accum, gen, modules, raws, {}, info.device, info.rank, info.world_size, dtype
                )
                for s in active:
                    with _only_trains(s, states, sync=micro == accum - 1):
                        with amp():
                            out = s.part.loss_fn(batch, ctx)
                        loss, scalars = out if isinstance(out, tuple) else (out, {})
                        (loss.float() / accum).backward()
                    loss_sum[s.part.name] += loss.detach().float() / accum
                    for k, v in scalars.items():
                        key = f"{s.part.name}/{k}"
                        v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                        extras_sum[key] = extras_sum.get(key, 0) + v.to(info.device) / accum
            norms = {
                s.part.name: _grad_norm(list(s.raw.parameters()), s.cfg.grad_clip).to(info.device)
                for s in active
            }
            check = torch.stack(list(loss_sum.values()) + list(norms.values()))
            if any_true(not bool(torch.isfinite(check).all()), info):
                bad = {
                    k: float(v)
                    for k, v in {**loss_sum, **{f"{k}/grad_norm": n for k, n in norms.items()}}.items()
                }
                status = "nonfinite_loss"
                raise NonFiniteLossError(
                    f"non-finite loss or gradient at step {step} (rank {info.rank}): {bad}. The run stopped "
                    f"without an update; the last good checkpoint is "
                    f"{checkpoints[-1] if checkpoints else '(none yet)'}. Lower train.lr, set train.grad_clip, "
                    f"use train.precision=fp32 to rule out bf16 overflow, or check the data; resume with the "
                    f"default resume=auto."
                )
            lrs = {s.part.name: s.optimizer.param_groups[0]["lr"] for s in active}
            for s in active:
                s.optimizer.step()
                s.optimizer.zero_grad(set_to_none=True)
                s.scheduler.step()
                if s.ema is not None:
                    s.ema.update(s.raw, step)
            done = step + 1
            step = done
            bar.update(1)

            if done % train_cfg.log_every == 0 or done == end_step:
                now = time.perf_counter()
                sps = (total_samples - window_samples) * info.world_size / max(now - window_t, 1e-9)
                window_t, window_samples = now, total_samples
                record: dict[str, Any] = {"step": done}
                first = parts[0].name
                record["loss"] = float(loss_sum[first]) if first in loss_sum else None
                for s in active:
                    record[f"{s.part.name}/loss"] = float(loss_sum[s.part.name])
                    record[f"{s.part.name}/grad_norm"] = float(norms[s.part.name])
                    record[f"{s.part.name}/lr"] = lrs[s.part.name]
                record["lr"] = lrs.get(first)
                record["grad_norm"] = record.get(f"{first}/grad_norm")
                record.update({k: float(v) for k, v in extras_sum.items()})
                record["samples_per_s"] = sps
                if tokens_per_sample:
                    record["tokens_per_s"] = sps * tokens_per_sample
                record["mfu"] = mfu(flops_per_sample, sps, info.world_size, peak)
                record["peak_mem_gib"] = peak_memory_gib(info.device)
                record = {k: v for k, v in record.items() if v is not None}
                last_record = record
                if info.is_main:
                    metrics_log.write(record)
                    tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, done)
                    track_best({"loss": record["loss"]} if "loss" in record else {}, done)
                    bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4g}", refresh=False)

            if eval_fn is not None and eval_every and (done % eval_every == 0 or done == train_cfg.steps):
                results = {k: float(v) for k, v in eval_fn(done, raws, emas).items()}
                if info.is_main:
                    metrics_log.write({"step": done, **results})
                    tracker.log_metrics(results, done)
                    track_best(results, done)
                    last_record = {**last_record, **results}

            if done % train_cfg.ckpt_every == 0 or done == end_step:
                save(done)
    except NonFiniteLossError:
        finish(status)
        raise
    except BaseException as exc:
        if info.is_main:
            tracker.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    summary = finish("finished" if step >= train_cfg.steps else "stopped")
    return TrainResult(run_dir, step, summary, raws, emas)


def _start_tracker(tracking_cfg, info: DistInfo, run_cfg, run_dir, spec_dict, spec_hash, extra):
    from walt_bench.tracking.mlflow import start_tracking

    return start_tracking(
        tracking_cfg,
        run_name=run_dir.name,
        params=spec_dict,
        tags={"spec_hash": spec_hash, "run_dir": str(run_dir), "world_size": str(info.world_size)},
        run_id=extra.get("mlflow_run_id"),
        enabled=info.is_main,
    )
