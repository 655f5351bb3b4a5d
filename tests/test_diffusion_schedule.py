"""Noise schedule γ(t): linear β (Table 8) and the zero-terminal-SNR rescale (Lin et al. 2023, Algorithm 1)."""

from __future__ import annotations

import torch

from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.diffusion.schedule import NoiseSchedule, linear_betas, rescale_zero_terminal_snr


def test_rescaled_schedule_reaches_zero_terminal_snr_exactly():
    sched = NoiseSchedule(1000, 1e-4, 0.02, zero_terminal_snr=True)
    assert sched.alphas_cumprod[-1].item() == 0.0
    assert sched.gamma(torch.tensor([1.0])).item() == 0.0
    assert sched.snr(torch.tensor([1.0])).item() == 0.0


def test_rescale_keeps_the_first_step_and_is_monotone():
    plain = NoiseSchedule(1000, 1e-4, 0.02, zero_terminal_snr=False)
    zsnr = NoiseSchedule(1000, 1e-4, 0.02, zero_terminal_snr=True)
    torch.testing.assert_close(zsnr.alphas_cumprod[0], plain.alphas_cumprod[0], rtol=0, atol=1e-12)
    assert torch.all(zsnr.alphas_cumprod[1:] < zsnr.alphas_cumprod[:-1])
    assert zsnr.betas[-1].item() == 1.0


def test_plain_schedule_keeps_signal_at_t_equal_one():
    plain = NoiseSchedule(1000, 1e-4, 0.02, zero_terminal_snr=False)
    # the flaw that Table 3e fixes: γ(1) = ᾱ_N ≈ 4e-5 > 0 leaks signal at the last step
    assert 1e-5 < plain.gamma(torch.tensor([1.0])).item() < 1e-4


def test_algorithm1_rescale_matches_sqrt_alpha_bar_affine_map():
    betas = linear_betas(1000, 1e-4, 0.02)
    s0 = torch.cumprod(1 - betas, 0).sqrt()
    s1 = torch.cumprod(1 - rescale_zero_terminal_snr(betas), 0).sqrt()
    expected = (s0 - s0[-1]) * s0[0] / (s0[0] - s0[-1])
    torch.testing.assert_close(s1, expected, rtol=0, atol=1e-9)


def test_gamma_on_the_grid_equals_the_table_and_interpolates_between():
    sched = NoiseSchedule(1000, 1e-4, 0.02)
    i = torch.tensor([1, 250, 999])
    torch.testing.assert_close(sched.gamma(i.double() / 1000), sched.alphas_cumprod[i - 1])
    assert sched.gamma(torch.tensor([0.0])).item() == 1.0
    mid = sched.gamma(torch.tensor([0.2505], dtype=torch.float64))
    torch.testing.assert_close(mid, (sched.alphas_cumprod[249:251].mean()).reshape(1))


def test_gamma_keeps_shape_dtype_for_per_frame_times():
    sched = NoiseSchedule.from_config(DiffusionConfig())
    t = torch.rand(3, 5)
    g = sched.gamma(t)
    assert g.shape == (3, 5) and g.dtype == torch.float32
    assert torch.all((g >= 0) & (g <= 1))


def test_discrete_training_times_lie_on_the_grid():
    sched = NoiseSchedule(1000)
    t = sched.sample_t((4096,), discrete=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(t * 1000, (t * 1000).round()) and t.min() >= 1e-3 and t.max() <= 1.0
