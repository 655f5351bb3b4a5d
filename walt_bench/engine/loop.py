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
        train_cfg=spec.train, run_dir=stage_dir(spec, "diffusion"), seed=spec.run.seed, device=spec.run.device,
        identity=stage_identity(d, "diffusion"), identity_fields=identity_fields(d, "diffusion"), spec_dict=d,
        tracker=tracker, resume=args.resume, allow_spec_mismatch=args.allow_spec_mismatch,
        flops_per_sample=model_info(model)["flops_per_sample"])
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
          make_loader, train_cfg=..., run_dir=..., seed=..., identity=..., spec_dict=...)

``make_loader(start_batch)`` must return an iterable of micro-batches for *this rank* that skips the
first ``start_batch`` of them: the loop passes ``step * grad_accum_steps`` (0 on a fresh start), i.e. the
data contract's ``build_loader(..., rank, world_size, start_step=start_batch)`` with the micro-batch size
from :func:`walt_bench.engine.micro_batch_size`. Run with ``python -m ...`` for one process or
``torchrun --nproc_per_node N ...`` for DDP/FSDP2. A step with a non-finite loss or gradient norm is refused
(no update) and logged (``{"step": k, "skipped": "nonfinite", ...}`` in metrics.jsonl); the
``train.max_bad_steps + 1``-th such step of a run raises :class:`NonFiniteLossError` (a ``UserError``: the
CLI prints it and exits 2) naming the part, the step and the last good checkpoint, which is kept.
Checkpoints, metrics and the tracker are written by rank 0 only; ``summary.json`` records the final status on
every exit (finished, stopped, nonfinite_loss, interrupted, failed).

Rank 0 holds ``<run_dir>/lock`` for the whole run (a second trainer on the directory gets a ``UserError``
naming the holder; a stale lock of a dead process is taken over with a warning) and, holding it, removes
temporary files that a killed writer left behind. A loader with a ``num_skipped`` attribute (the data layer's)
has its count of unreadable files skipped logged as ``data/skipped`` and stored in ``summary.json``.

The parts: ``engine/step.py`` (forward/backward and the optimizer step with the non-finite guard),
``engine/checkpointer.py`` (save/resume), ``engine/metrics_logger.py`` (metrics.jsonl, tracker, best values).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from walt_bench.engine.checkpoint import remove_orphan_temps
from walt_bench.engine.checkpointer import Checkpointer
from walt_bench.engine.config import TrainConfig
from walt_bench.engine.distributed import all_gather_objects, init_distributed, wrap_module
from walt_bench.engine.ema import EMA
from walt_bench.engine.metrics_logger import MetricsLogger
from walt_bench.engine.optim import build_optimizer, build_scheduler
from walt_bench.engine.rundir import RunLock, prepare_run_dir, versions, write_json_atomic
from walt_bench.engine.step import (
    NonFiniteLossError,
    NonFiniteStep,
    StepContext,
    optimizer_step,
    train_step,
)
from walt_bench.engine.throughput import peak_flops, peak_memory_gib
from walt_bench.engine.tracker import NullTracker
from walt_bench.errors import UserError

LossOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, Any]]
__all__ = ["NonFiniteLossError", "Part", "StepContext", "TrainResult", "autocast_dtype", "train"]


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


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on CUDA, fp32 (no autocast) on CPU; ``bf16``: bf16 anywhere; ``fp32``: none."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def set_activation_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Set ``activation_checkpointing`` on every submodule that declares that attribute."""
    for m in module.modules():
        if hasattr(m, "activation_checkpointing"):
            m.activation_checkpointing = enabled


def _nonfinite_advice(
    bad: NonFiniteStep, bad_steps: Sequence[int], limit: int, last_checkpoint: str | None, run_dir: Path
) -> str:
    """The message of :class:`NonFiniteLossError`: what happened where, and commands that work."""
    where = last_checkpoint or "(none yet)"
    earlier = [s for s in bad_steps if s != bad.step]
    return (
        f"{bad}. "
        f"The step was refused; this is bad step {len(bad_steps)} of the run (train.max_bad_steps={limit}"
        + (f"; earlier skipped steps: {earlier[-10:]}" if earlier else "")
        + f"), so the run stopped. The last good checkpoint is {where}. Resuming this run as it is replays the "
        "same data and noise, so it will most likely meet the same step again. Change what defines the run "
        "(e.g. train.lr=<lower>, train.grad_clip=1.0, train.precision=fp32 to rule out bf16 overflow, or a "
        "larger train.max_bad_steps) and train again: that is a new run directory and starts from step 0"
        + (
            f"; to continue from the good checkpoint instead, add --resume {where} --allow-spec-mismatch."
            if last_checkpoint
            else "."
        )
        + f" Also check the data (`walt-bench data check --spec FILE`). Run directory: {run_dir}."
    )


def _notice(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


# -- the loop ------------------------------------------------------------------------------------
def train(
    parts: Sequence[Part],
    make_loader: Callable[[int], Iterable[Any]],
    *,
    train_cfg: TrainConfig,
    run_dir: str | Path,
    seed: int,
    identity: str,
    spec_dict: Mapping[str, Any],
    identity_fields: Mapping[str, Any] | None = None,
    device: str = "auto",
    tracker: Any = None,
    extra: Mapping[str, Any] | None = None,
    resume: str = "auto",
    allow_spec_mismatch: bool = False,
    tokens_per_sample: int | None = None,
    flops_per_sample: float | None = None,
    eval_fn: Callable[[int, dict[str, nn.Module], dict[str, EMA]], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    higher_is_better: Sequence[str] = (),
    stop_at_step: int | None = None,
    progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``parts`` for ``train_cfg.steps`` optimizer steps in ``run_dir`` (see the module docstring).

    ``identity`` names the run (stored in every checkpoint; resuming a checkpoint of another identity lists the
    differing ``identity_fields`` and is refused unless ``allow_spec_mismatch``). ``tracker`` follows
    ``engine.tracker.Tracker`` (None: no tracking); ``extra`` is stored in every checkpoint (provenance).
    ``resume``: ``auto`` | ``never`` | a checkpoint path. ``eval_fn(step, raw_modules, emas) -> {metric: value}``
    runs on every rank every ``eval_every`` steps and at the end; its metrics are logged and tracked as best
    (lower is better unless named in ``higher_is_better``). ``stop_at_step`` ends this invocation early after
    that step (with a checkpoint), as a pre-emption would. Returns a :class:`TrainResult` (on every rank).
    """
    if not parts or len({p.name for p in parts}) != len(parts):
        raise ValueError("train() needs at least one Part and unique part names")
    info = init_distributed(device)
    run_dir = Path(run_dir)
    tracker = tracker if tracker is not None and info.is_main else NullTracker()
    lock, failure = RunLock(run_dir), None
    if info.is_main:
        try:
            lock.acquire()  # before anything in the directory is written
            prepare_run_dir(run_dir, spec_dict)
            orphans = remove_orphan_temps(run_dir / "checkpoints") + remove_orphan_temps(run_dir)
        except BaseException as exc:
            lock.release()
            failure = exc
        else:
            if orphans:
                _notice(
                    f"removed {len(orphans)} temporary file(s) that a killed run left in {run_dir}: "
                    + ", ".join(p.name for p in orphans[:5])
                )
    # every rank learns whether rank 0 could take the directory (instead of waiting for it at a barrier)
    failed = all_gather_objects(None if failure is None else f"{type(failure).__name__}: {failure}", info)[0]
    if failure is not None:
        raise failure
    if failed is not None:
        raise UserError(f"rank 0 could not prepare the run directory {run_dir}: {failed}")
    try:
        return _train(
            parts,
            make_loader,
            info=info,
            run_dir=run_dir,
            tracker=tracker,
            train_cfg=train_cfg,
            seed=seed,
            identity=identity,
            spec_dict=spec_dict,
            identity_fields=identity_fields,
            extra=extra,
            resume=resume,
            allow_spec_mismatch=allow_spec_mismatch,
            tokens_per_sample=tokens_per_sample,
            flops_per_sample=flops_per_sample,
            eval_fn=eval_fn,
            eval_every=eval_every,
            higher_is_better=higher_is_better,
            stop_at_step=stop_at_step,
            progress=progress,
            desc=desc,
        )
    finally:
        lock.release()


def _train(
    parts,
    make_loader,
    *,
    info,
    run_dir,
    tracker,
    train_cfg,
    seed,
    identity,
    spec_dict,
    identity_fields,
    extra,
    resume,
    allow_spec_mismatch,
    tokens_per_sample,
    flops_per_sample,
    eval_fn,
    eval_every,
    higher_is_better,
    stop_at_step,
    progress,
    desc,
) -> TrainResult:
    accum = train_cfg.grad_accum_steps
    dtype = autocast_dtype(train_cfg.precision, info.device)

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
    checkpointer = Checkpointer(
        run_dir / "checkpoints",
        info,
        identity=identity,
        identity_fields=identity_fields,
        spec_dict=spec_dict,
        keep_last=train_cfg.keep_last,
    )
    start, saved, resumed_from = checkpointer.resume(
        states,
        resume,
        seed,
        allow_spec_mismatch=allow_spec_mismatch,
        set_aside_with=(run_dir / "metrics.jsonl", run_dir / "summary.json"),
    )
    record_extra: dict[str, Any] = {**saved, **dict(extra or {})}
    summary_file = run_dir / "summary.json"
    if resumed_from and start >= train_cfg.steps and summary_file.is_file():
        # a finished run asked again (a driver re-running a done stage): nothing to train, and its summary,
        # metrics and tracked run stay as they are
        summary = json.loads(summary_file.read_text())
        if summary.get("status") == "finished" and summary.get("final_step") == start:
            raws = {s.part.name: s.raw for s in states}
            return TrainResult(run_dir, start, summary, raws, {s.part.name: s.ema for s in states if s.ema})

    # 3. logging
    tracker.start(saved.get("mlflow_run_id"))
    record_extra["mlflow_run_id"] = tracker.run_id
    log = MetricsLogger(
        run_dir / "metrics.jsonl",
        tracker,
        is_main=info.is_main,
        resume_step=start if resumed_from else None,
        world_size=info.world_size,
        tokens_per_sample=tokens_per_sample,
        flops_per_sample=flops_per_sample,
        peak_flops=peak_flops(info.device, dtype),
        peak_memory=lambda: peak_memory_gib(info.device),
        higher_is_better=higher_is_better,
        best=saved.get("best"),
    )
    checkpoints = checkpointer.paths() if info.is_main else []
    from tqdm.auto import tqdm

    show_bar = info.is_main if progress is None else (progress and info.is_main)
    bar = tqdm(total=train_cfg.steps, initial=start, disable=not show_bar, desc=desc, dynamic_ncols=True)
    raws = {s.part.name: s.raw for s in states}
    emas = {s.part.name: s.ema for s in states if s.ema is not None}
    step, t_start = start, time.perf_counter()
    end_step = train_cfg.steps if stop_at_step is None else min(train_cfg.steps, stop_at_step)

    bad_steps: list[int] = list(saved.get("bad_steps") or [])
    loader_obj = make_loader(start * accum)
    skipped_files = lambda: int(getattr(loader_obj, "num_skipped", 0) or 0)  # noqa: E731

    def save(at: int) -> None:
        record_extra["best"] = log.best
        record_extra["bad_steps"] = list(bad_steps)
        log.sync()  # the metrics up to this checkpoint are on disk before the checkpoint is
        if checkpointer.save(states, at, at * accum, record_extra) is not None:
            checkpoints[:] = checkpointer.paths()

    def finish(status: str, error: str | None = None) -> dict[str, Any]:
        wall = time.perf_counter() - t_start
        summary = {
            "status": status,
            "error": error,
            "identity": identity,
            "run_dir": str(run_dir),
            "final_step": step,
            "steps": train_cfg.steps,
            "final_loss": log.last.get("loss"),
            "final_metrics": log.last,
            "best_metrics": log.best,
            "checkpoints": checkpoints,
            "last_checkpoint": checkpoints[-1] if checkpoints else None,
            "resumed_from": resumed_from,
            "wall_time_s": wall,
            "samples_per_s": log.total_samples * info.world_size / wall if wall > 0 else None,
            "tokens_per_s": log.total_samples * info.world_size * tokens_per_sample / wall
            if tokens_per_sample and wall > 0
            else None,
            "world_size": info.world_size,
            "bad_steps": list(bad_steps),
            "unreadable_files_skipped": skipped_files(),
            "mlflow_run_id": tracker.run_id,
            "provenance": {
                k: v for k, v in record_extra.items() if k not in ("best", "mlflow_run_id", "bad_steps")
            },
            "versions": versions(),
        }
        if info.is_main:
            try:
                write_json_atomic(run_dir / "summary.json", summary)
            except (
                Exception
            ) as exc:  # e.g. the disk that stopped the run is still full: report, don't mask it
                if status in ("finished", "stopped"):
                    raise
                _notice(f"could not write {run_dir / 'summary.json'} ({exc})")
            tracker.log_artifact(str(run_dir / "spec.yaml"))
            tracker.log_artifact(str(run_dir / "summary.json"))
            tracker.end(
                {"finished": "FINISHED", "stopped": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
            )
            log.close()
        bar.close()
        return summary

    # 4. steps
    loader = iter(loader_obj)
    try:
        for step in range(start, end_step):
            active = [s for s in states if step >= s.part.start_step]
            out = train_step(step, active, states, loader, info=info, seed=seed, accum=accum, dtype=dtype)
            log.count(out.samples)
            try:
                norms, lrs = optimizer_step(step, active, out, info=info)
            except NonFiniteStep as bad:
                bad_steps.append(bad.step)
                if len(bad_steps) > train_cfg.max_bad_steps:
                    last_good = checkpoints[-1] if checkpoints else None
                    raise NonFiniteLossError(
                        _nonfinite_advice(bad, bad_steps, train_cfg.max_bad_steps, last_good, run_dir)
                    ) from None
                msg = (
                    f"{bad}; step skipped (no update), bad step {len(bad_steps)} of at most "
                    f"train.max_bad_steps={train_cfg.max_bad_steps}"
                )
                if info.is_main:
                    _notice(msg)
                    log.skipped(bad.step, bad.parts, bad.values)
                norms, lrs = None, None
            done = step = step + 1
            bar.update(1)
            if norms is not None and (done % train_cfg.log_every == 0 or done == end_step):
                losses = {k: float(v) for k, v in out.losses.items()}
                extras = {k: float(v) for k, v in out.extras.items()}
                if skipped_files():
                    extras["data/skipped"] = float(skipped_files())
                record = log.step(done, losses, norms, lrs, extras, parts[0].name)
                if "loss" in record:
                    bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
            if eval_fn is not None and eval_every and (done % eval_every == 0 or done == train_cfg.steps):
                log.eval(done, eval_fn(done, raws, emas))
            if done % train_cfg.ckpt_every == 0 or done == end_step:
                save(done)
    except NonFiniteLossError as exc:
        finish("nonfinite_loss", str(exc))
        raise
    except KeyboardInterrupt:
        finish("interrupted", "KeyboardInterrupt")
        raise
    except BaseException as exc:
        finish("failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    summary = finish("finished" if step >= train_cfg.steps else "stopped")
    return TrainResult(run_dir, step, summary, raws, emas)
