"""Sampling one stage of W.A.L.T: noise -> DDIM (+ self-conditioning, CFG, frame-prediction context,
super-resolution low-res input) -> tokenizer-space latents; plus long videos and the SR cascade.

Public inputs and outputs are *tokenizer-space* latents (B, t, c, h, w); normalisation (Table 3e) happens
inside, with the stage's own :class:`~walt_bench.diffusion.objective.LatentNormalizer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from walt_bench.diffusion import conditioning as cond
from walt_bench.diffusion.cascade import noise_augment
from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.diffusion.objective import LatentNormalizer
from walt_bench.diffusion.sampler import (
    Generators,
    classifier_free_guidance,
    ddim_timesteps,
    randn,
    sample_autoregressive,
    sample_ddim,
)
from walt_bench.diffusion.schedule import NoiseSchedule


@dataclass
class StageSampler:
    """Everything needed to sample from one trained denoiser (base or SR stage)."""

    model: torch.nn.Module
    cfg: DiffusionConfig
    latent_shape: tuple[int, int, int, int]  # (t, c, h, w)
    normalizer: LatentNormalizer
    num_classes: int = 0
    self_condition: bool = True
    frame_condition: bool = False
    lowres_condition: bool = False
    image: bool = (
        False  # trained on images (is_image): identity attention in ST layers at sampling too (§4.2)
    )
    autocast: torch.dtype | None = None  # e.g. bf16 on CUDA for the denoiser calls; DDIM updates stay fp32

    @property
    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule.from_config(self.cfg)

    @torch.no_grad()
    def sample(
        self,
        batch: int,
        *,
        labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        lowres: torch.Tensor | None = None,
        generator: Generators = None,
        device: torch.device | str = "cpu",
        disable: bool = True,
    ) -> torch.Tensor:
        """Sample ``batch`` latent clips (B, t, c, h, w) in tokenizer space.

        ``labels`` (B,) class ids (needed when ``num_classes > 0``); ``context`` (B, k, c, h, w) clean latents
        that become c_fp (§4.4), give the first k frames of z_t their training-time value q_sample(context)
        at every step (see :func:`sample_ddim`) and are copied into the first k output frames; ``lowres`` (B, t, c, h/2, w/2)
        the previous stage's latents, noised at ``cfg.sample_noise_aug`` (§4.5). ``generator``: one, or one per
        sample (each sample's noise then comes from its own generator, see :func:`~walt_bench.diffusion.sampler.randn`).
        """
        cfg, schedule = self.cfg, self.schedule
        t, c, h, w = self.latent_shape
        x = randn((batch, t, c, h, w), device=device, generator=generator)
        args: dict = {}
        uncond: dict = {}
        if self.image:
            args["is_image"] = torch.ones(batch, dtype=torch.bool, device=device)
        if self.num_classes > 0:
            if labels is None:
                raise ValueError("a class-conditional stage needs labels")
            args["class_labels"] = labels.to(device)
            uncond["class_labels"] = cond.null_labels(args["class_labels"], self.num_classes)
        ctx_norm = None
        if self.frame_condition:
            if context is not None:
                ctx_norm = self.normalizer.normalize(context.to(device))
                args["frame_cond"] = cond.context_frame_condition(ctx_norm, t)
            else:
                args["frame_cond"] = torch.zeros((batch, t, c + 1, h, w), device=device)
            uncond["frame_cond"] = torch.zeros_like(args["frame_cond"])
        elif context is not None:
            raise ValueError("context frames given but the model has no frame-condition input")
        if self.lowres_condition:
            if lowres is None:
                raise ValueError("a super-resolution stage needs the previous stage's latents")
            t_sr = torch.full((batch,), cfg.sample_noise_aug, device=device)
            args["lowres"] = noise_augment(
                self.normalizer.normalize(lowres.to(device)), t_sr, schedule, generator=generator
            )
            args["noise_aug"] = t_sr
        model_fn = classifier_free_guidance(self.model, cfg.guidance_scale, uncond)
        timesteps = ddim_timesteps(cfg.sample_steps, cfg.num_timesteps, cfg.timestep_spacing)
        with torch.autocast(
            torch.device(device).type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)
        ):
            z0 = sample_ddim(
                model_fn,
                x,
                timesteps,
                args,
                disable=disable,
                schedule=schedule,
                eta=cfg.eta,
                generator=generator,
                self_condition=self.self_condition,
                context=ctx_norm,
            )
        z0 = self.normalizer.denormalize(z0)
        if context is not None:
            z0[:, : context.shape[1]] = context.to(device=device, dtype=z0.dtype)
        return z0

    def sample_long(
        self,
        batch: int,
        num_chunks: int,
        *,
        labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        to_context=None,
        generator: Generators = None,
        device: torch.device | str = "cpu",
    ) -> list[torch.Tensor]:
        """Autoregressive long video (§4.4): chunk i > 0 is conditioned on the previous chunk's last
        ``cfg.ar_context_frames`` latent frames (or ``to_context(chunk)``); returns the chunks."""

        def chunk(ctx: torch.Tensor | None) -> torch.Tensor:
            return self.sample(batch, labels=labels, context=ctx, generator=generator, device=device)

        return sample_autoregressive(
            chunk, num_chunks, self.cfg.ar_context_frames, first_context=context, to_context=to_context
        )
