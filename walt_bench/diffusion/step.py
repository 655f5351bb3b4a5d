"""One training loss evaluation of W.A.L.T: Eq. 1-2 with self-conditioning, frame prediction, CFG dropout,
joint image-video batches and super-resolution noise augmentation.

The denoiser is any callable with the WALT forward signature (shared contract):
``model(z_t, t, *, class_labels, self_cond, frame_cond, lowres, noise_aug, is_image) -> v̂``.

Steps of :meth:`DiffusionObjective.__call__` (latents already normalised):
    1. t: (B,) for video batches; (B, T) when any example is an image stack (independent t per image).
    2. z_t = q_sample(z_0, γ(t), ε), target v (Eq. 1, §3).
    3. frame prediction: k ~ {0} ∪ fp_frames per video example; c_fp = concat(m ∘ z_0, m) (§4.4).
    4. CFG dropout: label -> null class, c_fp -> zeros, for the same examples.
    5. SR stages: t_sr ~ U(0, t_max_noise); the low-res latent is noised with γ(t_sr) (§4.5).
    6. self-conditioning: for a Bernoulli(p_sc) subset a gradient-free first pass gives ẑ_0 (§4.3).
    7. v̂ = f_θ(z_t; stopgrad(ẑ_0), c, t); Eq. 2 over the non-conditioning frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from walt_bench.diffusion import conditioning as cond
from walt_bench.diffusion.cascade import noise_augment, sample_t_sr
from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.diffusion.objective import q_sample, v_loss, v_target, x0_from_v
from walt_bench.diffusion.schedule import NoiseSchedule


@dataclass
class DiffusionObjective:
    """Callable loss; which inputs it builds follows the denoiser's flags (``model.self_condition`` etc.)."""

    cfg: DiffusionConfig
    schedule: NoiseSchedule
    num_classes: int = 0
    self_condition: bool = True
    frame_condition: bool = False
    lowres_condition: bool = False

    def __call__(
        self,
        model,
        z0: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        is_image: torch.Tensor | None = None,
        lowres: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """z0 (B, T, c, h, w) normalised latents -> (scalar loss, {"sc_rate", "fp_rate"} for logging)."""
        cfg, dev = self.cfg, z0.device
        b, t_frames = z0.shape[:2]
        discrete = cfg.timestep_sampling == "discrete"
        # 1. diffusion times
        if is_image is not None and bool(is_image.any()):
            t_img = self.schedule.sample_t((b, t_frames), discrete=discrete, device=dev, generator=generator)
            t_vid = self.schedule.sample_t((b, 1), discrete=discrete, device=dev, generator=generator)
            t = torch.where(is_image.to(dev)[:, None], t_img, t_vid.expand(b, t_frames))
        else:
            t = self.schedule.sample_t((b,), discrete=discrete, device=dev, generator=generator)
        gamma = self.schedule.gamma(t)
        # 2. Eq. 1 and the v target
        noise = torch.randn(z0.shape, device=dev, generator=generator, dtype=z0.dtype)
        z_t = q_sample(z0, gamma, noise)
        v = v_target(z0, noise, gamma)
        # 3. frame prediction
        k = torch.zeros(b, dtype=torch.long, device=dev)
        if self.frame_condition:
            k = cond.draw_context_frames(
                b, t_frames, cfg.p_fp, cfg.fp_frames, is_image=is_image, device=dev, generator=generator
            )
        # 4. classifier-free guidance dropout (same examples lose every condition)
        drop = cond.bernoulli(b, cfg.cond_drop_prob, device=dev, generator=generator)
        k = torch.where(drop, torch.zeros_like(k), k)
        mask = cond.context_mask(k, t_frames)  # (B, T)
        kwargs: dict = {"is_image": is_image}
        if self.frame_condition:
            kwargs["frame_cond"] = cond.frame_condition(z0, mask)
        if self.num_classes > 0 and labels is not None:
            kwargs["class_labels"] = cond.drop_labels(labels.to(dev), drop, self.num_classes)
        # 5. super-resolution noise conditioning augmentation
        if self.lowres_condition:
            if lowres is None:
                raise ValueError("a super-resolution stage (model.lowres_condition) needs the low-res latent")
            t_sr = sample_t_sr(b, cfg.t_max_noise, device=dev, generator=generator)
            kwargs["lowres"] = noise_augment(lowres, t_sr, self.schedule, generator=generator)
            kwargs["noise_aug"] = t_sr
        # 6. self-conditioning: first pass without gradient for a Bernoulli(p_sc) subset
        sc_rate = torch.zeros((), device=dev)
        if self.self_condition:
            self_cond = torch.zeros_like(z0)
            use_sc = cond.bernoulli(b, cfg.p_sc, device=dev, generator=generator)
            sc_rate = use_sc.float().mean()
            if bool(use_sc.any()):
                with torch.no_grad():
                    v_first = model(z_t, t, self_cond=self_cond, **kwargs)
                    z0_first = x0_from_v(z_t, v_first.to(z_t.dtype), gamma)
                self_cond = torch.where(use_sc.view(b, 1, 1, 1, 1), z0_first, self_cond).detach()
            kwargs["self_cond"] = self_cond
        # 7. second pass and Eq. 2 on the frames that are not given as context
        v_hat = model(z_t, t, **kwargs)
        loss = v_loss(v_hat, v, frame_weight=1.0 - mask)
        # tensors, not floats: no device sync per step (the engine averages and logs them)
        stats = {"sc_rate": sc_rate, "fp_rate": (k > 0).float().mean()}
        return loss, stats
