"""``walt-bench tokenizer train``: the autoencoder and its discriminator, through the shared engine loop.

Two engine parts, each with its own optimizer (settings from ``tokenizer.train``):

- ``autoencoder``: reconstruction + perceptual (+ KL) + adversarial loss (:class:`TokenizerObjective`);
- ``discriminator``: non-saturating loss + LeCAM (+ R1), from ``tokenizer.discriminator_start_step`` on
  (absent when ``tokenizer.adversarial_weight`` is 0).

Single process: ``walt-bench tokenizer train --spec experiments/smoke/default.yaml``; many GPUs:
``torchrun --nproc_per_node 8 -m walt_bench tokenizer train --spec experiments/tokenizers/ucf101.yaml``.
The run directory is ``<run.out_dir>/tokenizer-<identity>`` (``walt_bench/identity.py``). ``val/psnr`` is measured at
every checkpoint on the first clips of ``tokenizer.eval_split`` (held out when the training split excludes it).
"""

from __future__ import annotations

from typing import Any

import torch

from walt_bench.tokenizer.build import DISCRIMINATOR_PART, PART, build_discriminator
from walt_bench.tokenizer.metrics import psnr
from walt_bench.tokenizer.model import CausalAutoencoder, num_parameters
from walt_bench.tokenizer.objective import TokenizerObjective

EVAL_CLIPS = 4  # clips of tokenizer.eval_split whose PSNR is logged at every checkpoint


def train_tokenizer(
    spec,
    *,
    resume: str = "auto",
    stop_at_step: int | None = None,
    progress: bool | None = None,
    allow_spec_mismatch: bool = False,
):
    """Train the tokenizer of ``spec``; returns the engine's ``TrainResult`` (``summary["last_checkpoint"]``)."""
    from walt_bench.data.loader import build_loader
    from walt_bench.engine.distributed import init_distributed, micro_batch_size
    from walt_bench.engine.loop import Part, train

    tcfg = spec.tokenizer.train
    info = init_distributed(spec.run.device)
    micro = micro_batch_size(tcfg.batch_size, info.world_size, tcfg.grad_accum_steps)

    torch.manual_seed(spec.run.seed)  # the same initial weights on every rank and in every process
    model = CausalAutoencoder(spec.tokenizer)
    objective = TokenizerObjective(spec.tokenizer)
    critic = build_discriminator(spec) if objective.uses_gan else None

    def autoencoder_loss(batch: dict[str, Any], ctx):
        if next(objective.parameters(), torch.empty(0)).device != ctx.device:
            objective.to(ctx.device)
        disc = ctx.modules.get(DISCRIMINATOR_PART)
        loss, x_hat, metrics = objective.generator_loss(
            ctx.modules[PART], disc, batch["video"], ctx.step, generator=ctx.generator
        )
        ctx.state["recon"] = x_hat.detach()
        return loss, metrics

    def discriminator_loss(batch: dict[str, Any], ctx):
        lecam = ctx.raw[DISCRIMINATOR_PART].lecam
        return objective.discriminator_loss(
            ctx.modules[DISCRIMINATOR_PART], lecam, batch["video"], ctx.state["recon"]
        )

    def make_loader(start_batch: int):
        return build_loader(
            spec.data,
            micro,
            seed=spec.run.seed,
            rank=info.rank,
            world_size=info.world_size,
            start_step=start_batch,
        )

    fixed = held_out_clips(spec, EVAL_CLIPS)

    @torch.no_grad()
    def eval_fn(step: int, raws: dict, emas: dict) -> dict[str, float]:
        ae = raws[PART]
        was_training = ae.training
        ae.eval()
        video = fixed.to(next(ae.parameters()).device)
        value = psnr(ae.decode(ae.encode(video)), video).mean().item()
        ae.train(was_training)
        return {"val/psnr": value}

    parts = [Part(PART, model, autoencoder_loss)]
    if critic is not None:
        parts.append(
            Part(
                DISCRIMINATOR_PART,
                critic,
                discriminator_loss,
                start_step=spec.tokenizer.discriminator_start_step,
                ema=False,
            )
        )
    t, h, w = spec.latent_shape
    print(
        f"tokenizer: {num_parameters(model) / 1e6:.2f}M params"
        + (f", discriminator {num_parameters(critic) / 1e6:.2f}M" if critic is not None else ", no GAN")
        + f"; {spec.data.num_frames}x{spec.data.height}x{spec.data.width} -> {t}x{h}x{w}x"
        f"{spec.tokenizer.latent_channels}; perceptual {'on' if objective.perceptual is not None else 'off'}"
    )
    from walt_bench.identity import identity_fields, stage_dir, stage_identity
    from walt_bench.tracking.mlflow import stage_tracker

    d = spec.to_dict()
    identity = stage_identity(d, "tokenizer")
    tracker = stage_tracker(spec, "tokenizer", identity, enabled=info.is_main)
    return train(
        parts,
        make_loader,
        train_cfg=tcfg,
        run_dir=stage_dir(spec, "tokenizer"),
        seed=spec.run.seed,
        device=spec.run.device,
        identity=identity,
        identity_fields=identity_fields(d, "tokenizer"),
        spec_dict=d,
        tracker=tracker,
        desc="tokenizer",
        resume=resume,
        allow_spec_mismatch=allow_spec_mismatch,
        eval_fn=eval_fn,
        eval_every=tcfg.ckpt_every,
        higher_is_better=("val/psnr",),
        stop_at_step=stop_at_step,
        progress=progress,
    )


def held_out_clips(spec, n: int) -> torch.Tensor:
    """The first ``n`` clips (centre-sampled) of ``tokenizer.eval_split``: ``val/psnr``'s fixed batch.

    Falls back to the training split, with a notice, when the dataset has no such split.
    """
    from walt_bench.data.loader import build_dataset
    from walt_bench.errors import DataError

    cfg = spec.data.model_copy(update={"image_root": None, "image_ratio": 0.0, "clip_sampling": "center"})
    try:
        dataset = build_dataset(cfg, split=spec.tokenizer.eval_split)
    except DataError as exc:
        print(
            f"val/psnr: no split {spec.tokenizer.eval_split!r} ({exc}); measuring on training clips instead"
        )
        dataset = build_dataset(cfg, split=spec.data.split)
    return torch.stack([dataset[i]["video"] for i in range(min(n, len(dataset)))])
