"""Optimizers and learning-rate schedules from :class:`~walt_bench.engine.config.TrainConfig`.

Table 8: AdamW for the diffusion model (ImageNet/UCF-101/K600), Adam for the tokenizer, Adafactor for
text-to-video; cosine decay (constant for the aspect-ratio finetune). Warmup is our documented choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from walt_bench.engine.config import TrainConfig


def lr_multiplier(
    step: int, total_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float = 0.0
) -> float:
    """Factor applied to the peak lr at (0-based) optimizer ``step``.

    Linear warmup ``(step + 1) / warmup_steps`` for ``step < warmup_steps``; then ``constant`` stays at 1
    and ``cosine`` follows ``min + (1 - min) * (1 + cos(pi * progress)) / 2`` with
    ``progress = (step - warmup) / (total - warmup)`` going from 0 to 1 over the remaining steps.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}")
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW / Adam / Adafactor over ``params`` (only those with ``requires_grad``)."""
    params = [p for p in params if p.requires_grad]
    # The fused CUDA kernel is the fastest Adam; plain (non-DTensor) CUDA parameters only.
    fused = bool(params) and all(p.is_cuda and not hasattr(p, "device_mesh") for p in params)
    adam_kw = dict(
        lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused or None
    )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **adam_kw)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **adam_kw)
    if cfg.optimizer == "adafactor":
        return torch.optim.Adafactor(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` whose factor at scheduler step ``s`` is :func:`lr_multiplier` (s, total_steps, ...)."""
    warmup, schedule, floor = cfg.warmup_steps, cfg.lr_schedule, cfg.min_lr_ratio
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, total_steps, warmup, schedule, floor)
    )
