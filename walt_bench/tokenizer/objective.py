"""The tokenizer's training objective: one generator (autoencoder) step and one discriminator step.

Generator loss (VQGAN / MAGVIT recipe, weights from ``TokenizerConfig``)::

    L_G = w_rec * rec(x_hat, x) + w_perc * perc(x_hat, x) + w_kl * KL + [step >= start] * w_adv * softplus(-D(x_hat))

Discriminator loss, from ``discriminator_start_step`` on::

    L_D = w_disc * (softplus(-D(x)) + softplus(D(x_hat))) + w_lecam * R_LC + w_r1 * R1

Both are plain functions of modules and a batch, so any loop (the engine's, a test's) can drive them.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from walt_bench.tokenizer import losses
from walt_bench.tokenizer.config import TokenizerConfig


@contextmanager
def frozen(module: nn.Module):
    """Turn off ``requires_grad`` of ``module``'s parameters inside the block (restored afterwards)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


class Critic(nn.Module):
    """The trained discriminator part: the 3D StyleGAN discriminator plus its LeCAM anchors (saved with it)."""

    def __init__(self, network: nn.Module, lecam_decay: float = 0.999):
        super().__init__()
        self.network = network
        self.lecam = losses.LeCAM(lecam_decay)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.network(video)


class TokenizerObjective(nn.Module):
    """Holds the frozen perceptual network and computes the generator and discriminator losses."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.perceptual = losses.build_perceptual_loss(
            cfg.perceptual_weight, cfg.perceptual_network, cfg.perceptual_weights
        )

    @property
    def uses_gan(self) -> bool:
        return self.cfg.adversarial_weight > 0

    def gan_active(self, step: int) -> bool:
        """Whether the discriminator trains and the adversarial term counts at optimizer step ``step``."""
        return self.uses_gan and step >= self.cfg.discriminator_start_step

    def generator_loss(
        self,
        model: nn.Module,
        discriminator: nn.Module | None,
        video: torch.Tensor,
        step: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``video (B, T, 3, H, W)`` -> ``(loss, x_hat, metrics)``; ``x_hat`` is kept for the discriminator step.

        ``generator`` draws the KL posterior sample (exact resume); ``discriminator`` may be None (no GAN).
        """
        cfg = self.cfg
        x_hat, post = model(video, generator=generator)
        rec = losses.reconstruction_loss(x_hat, video, cfg.recon_loss)
        loss = cfg.recon_weight * rec
        metrics = {"rec": rec.detach()}
        if self.perceptual is not None:
            perc = self.perceptual(x_hat, video)
            loss = loss + cfg.perceptual_weight * perc
            metrics["perceptual"] = perc.detach()
        if cfg.latent_kind == "kl":
            kl = post.kl()
            loss = loss + cfg.kl_weight * kl
            metrics["kl"] = kl.detach()
        if discriminator is not None and self.gan_active(step):
            with frozen(discriminator):
                adv = losses.generator_loss(discriminator(x_hat))
            loss = loss + cfg.adversarial_weight * adv
            metrics["g_adv"] = adv.detach()
        return loss, x_hat, metrics

    def discriminator_loss(
        self, discriminator: nn.Module, lecam: losses.LeCAM, video: torch.Tensor, x_hat: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Non-saturating D loss on real ``video`` vs detached reconstructions, plus LeCAM and optional R1.

        ``discriminator`` is the module to call (possibly DDP-wrapped), ``lecam`` its :class:`Critic`'s anchors.
        """
        cfg = self.cfg
        real = video.detach().requires_grad_(cfg.r1_weight > 0)
        real_logits = discriminator(real)
        fake_logits = discriminator(x_hat.detach())
        d = losses.discriminator_loss(real_logits, fake_logits)
        loss = cfg.discriminator_weight * d
        metrics = {
            "d": d.detach(),
            "real_logit": real_logits.detach().mean(),
            "fake_logit": fake_logits.detach().mean(),
        }
        if cfg.lecam_weight > 0:
            lc = lecam(real_logits, fake_logits)
            loss = loss + cfg.lecam_weight * lc
            metrics["lecam"] = lc.detach()
        if cfg.r1_weight > 0:
            r1 = losses.r1_penalty(real_logits, real)
            loss = loss + cfg.r1_weight * r1
            metrics["r1"] = r1.detach()
        lecam.update(real_logits, fake_logits)
        return loss, metrics
