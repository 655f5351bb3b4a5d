"""Spec section ``train``: the optimisation, precision, parallelism and checkpoint settings shared by
both trainers (tokenizer GAN and diffusion model).

Defaults are Table 8 of the paper (UCF-101 column, second stage). Where the paper is silent (appendix:
"Not stated anywhere: EMA decay, warmup, weight decay, Adam betas, gradient clipping") the description
says "paper is silent; we choose X because Y".
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from walt_bench.config import NonNegativeInt, PositiveFloat, PositiveInt, Probability, Section


class TrainConfig(Section):
    # -- length and batch ------------------------------------------------------------------------
    steps: PositiveInt = Field(60000, description="Optimizer steps (Table 8, UCF-101: 60k).")
    batch_size: PositiveInt = Field(
        256,
        description="Global batch size per optimizer step, summed over ranks and accumulation micro-steps "
        "(Table 8, UCF-101: 256). Must be divisible by world_size * grad_accum_steps.",
    )
    grad_accum_steps: PositiveInt = Field(
        1,
        description="Micro-batches accumulated per optimizer step; the per-rank loader batch is "
        "batch_size / (world_size * grad_accum_steps). Paper is silent; 1 (no accumulation).",
    )
    # -- optimizer -------------------------------------------------------------------------------
    optimizer: Literal["adamw", "adam", "adafactor"] = Field(
        "adamw", description="Table 8: AdamW (Adam for the tokenizer, Adafactor for T2V)."
    )
    lr: PositiveFloat = Field(5e-4, description="Peak learning rate (Table 8: 5e-4).")
    weight_decay: float = Field(
        0.0,
        ge=0.0,
        description="Decoupled weight decay (AdamW/Adafactor) or L2 (Adam). Paper is silent; we choose 0.0 "
        "as DiT does for the same transformer family, so AdamW differs from Adam only when set.",
    )
    betas: tuple[Probability, Probability] = Field(
        (0.9, 0.999),
        description="Adam/AdamW (beta1, beta2). Paper is silent; we choose PyTorch's defaults (0.9, 0.999), "
        "which DiT also uses. Ignored by Adafactor.",
    )
    eps: PositiveFloat = Field(
        1e-8,
        description="Adam/AdamW epsilon. Paper is silent; PyTorch default 1e-8. Ignored by Adafactor "
        "(which uses its own (None, 1e-3) epsilons).",
    )
    # -- learning-rate schedule ------------------------------------------------------------------
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="Table 8: cosine decay (constant for the aspect-ratio finetune, Table 6)."
    )
    warmup_steps: NonNegativeInt = Field(
        1000,
        description="Linear warmup from lr/warmup_steps to lr over this many steps, then the schedule. "
        "Paper is silent; we choose 1000 (under 2% of the 60k-step UCF-101 run) for transformer stability.",
    )
    min_lr_ratio: Probability = Field(
        0.0, description="Cosine floor as a fraction of lr. Paper is silent; 0.0 (decay to zero)."
    )
    grad_clip: float = Field(
        1.0,
        ge=0.0,
        description="Clip the global gradient L2 norm to this value; 0 disables clipping (the norm is still "
        "logged). Paper is silent; we choose 1.0, the common value for diffusion transformers.",
    )
    # -- EMA -------------------------------------------------------------------------------------
    ema: bool = Field(
        True, description="Keep an EMA of the weights (Table 8: yes for ImageNet/UCF/K600, no for T2V)."
    )
    ema_decay: Probability = Field(
        0.9999,
        description="EMA decay per optimizer step: ema = decay * ema + (1 - decay) * param. Paper is silent; "
        "we choose 0.9999 (DiT, ADM), an averaging horizon of ~10k steps.",
    )
    ema_start_step: NonNegativeInt = Field(
        0,
        description="Before this step the EMA is a plain copy of the weights; decay applies from here on. "
        "Paper is silent; 0. Set it in short runs so the EMA does not average in the random init.",
    )
    max_bad_steps: NonNegativeInt = Field(
        3,
        description="Optimizer steps with a non-finite (NaN/Inf) loss or gradient norm that are skipped over the "
        "whole run (gradients zeroed, no parameter, optimizer, schedule or EMA update, logged as 'skipped') before "
        "the next one stops the run with diagnostics; 0 stops at the first. Paper is silent; we choose 3: an "
        "isolated bf16 overflow or bad batch costs one step, while a diverging run stops within a few steps.",
    )
    # -- numerics and speed ----------------------------------------------------------------------
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Autocast dtype: auto = bf16 on CUDA, fp32 on CPU. Parameters and optimizer state stay fp32.",
    )
    compile: bool = Field(
        False, description="Compile each trained module with torch.compile (off: faster start-up)."
    )
    activation_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass to save memory; the model reads this flag "
        "(the engine sets `module.activation_checkpointing` on modules that have that attribute).",
    )
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="Multi-process strategy under torchrun: DDP (replicated weights) or FSDP2 "
        "(torch.distributed.fsdp.fully_shard, sharded weights/optimizer state) for models that do not fit.",
    )
    find_unused_parameters: bool = Field(
        False, description="DDP: allow parameters that get no gradient in a step (slower; only if needed)."
    )
    # -- logging and checkpoints -----------------------------------------------------------------
    log_every: PositiveInt = Field(10, description="Write metrics (metrics.jsonl, MLflow) every N steps.")
    ckpt_every: PositiveInt = Field(
        1000, description="Write a checkpoint every N steps (and always at the last step)."
    )
    keep_last: PositiveInt = Field(3, description="Keep the N newest checkpoints; older ones are deleted.")
