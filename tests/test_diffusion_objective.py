"""Eq. 1-2, the v target and its inverses, latent normalisation."""

from __future__ import annotations

import torch

from walt_bench.diffusion.objective import (
    LatentNormalizer,
    eps_from_v,
    latent_stats,
    q_sample,
    v_loss,
    v_target,
    x0_from_v,
)


def _example():
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(3, 2, 4, 5, 5, generator=g)
    eps = torch.randn(3, 2, 4, 5, 5, generator=g)
    gamma = torch.tensor([0.9, 0.4, 0.05])
    return z0, eps, gamma


def test_x0_and_eps_from_v_invert_the_v_target():
    z0, eps, gamma = _example()
    z_t = q_sample(z0, gamma, eps)
    v = v_target(z0, eps, gamma)
    torch.testing.assert_close(x0_from_v(z_t, v, gamma), z0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps_from_v(z_t, v, gamma), eps, atol=1e-5, rtol=1e-5)


def test_q_sample_is_eq1_per_frame():
    z0, eps, _ = _example()
    gamma = torch.tensor([[1.0, 0.0]] * 3)  # (B, T): frame 0 clean, frame 1 pure noise
    z_t = q_sample(z0, gamma, eps)
    torch.testing.assert_close(z_t[:, 0], z0[:, 0])
    torch.testing.assert_close(z_t[:, 1], eps[:, 1])


def test_x0_estimate_at_zero_snr_is_minus_v():
    z_t, v_hat = torch.randn(2, 2, 4, 3, 3), torch.randn(2, 2, 4, 3, 3)
    torch.testing.assert_close(x0_from_v(z_t, v_hat, torch.zeros(2)), -v_hat)


def test_v_loss_ignores_masked_frames():
    v = torch.zeros(1, 3, 2, 2, 2)
    v_hat = torch.zeros_like(v)
    v_hat[:, 0] = 100.0  # a conditioning frame: must not count
    v_hat[:, 1:] = 1.0
    assert v_loss(v_hat, v, frame_weight=torch.tensor([[0.0, 1.0, 1.0]])).item() == 1.0
    assert v_loss(v_hat, v).item() > 1.0


def test_latent_normalizer_round_trips_and_whitens():
    z = torch.randn(8, 2, 3, 4, 4) * torch.tensor([1.0, 5.0, 0.1]).view(1, 1, 3, 1, 1) + 2.0
    norm = LatentNormalizer(3)
    norm.set_stats(*latent_stats(z))
    zn = norm.normalize(z)
    mean, std = latent_stats(zn)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.denormalize(zn), z, atol=1e-5, rtol=1e-5)


def test_latent_norm_switch_off_is_identity():
    z = torch.randn(2, 2, 3, 4, 4) + 3.0
    norm = LatentNormalizer(3, enabled=False)
    norm.set_stats(torch.full((3,), 3.0), torch.full((3,), 2.0))
    assert torch.equal(norm.normalize(z), z)
    on = LatentNormalizer(3, enabled=True)
    on.set_stats(torch.full((3,), 3.0), torch.full((3,), 2.0))
    assert not torch.allclose(on.normalize(z), z)
