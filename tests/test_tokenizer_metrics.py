"""PSNR and SSIM of reconstructions (torchmetrics), checked against values computed by hand and against the
hand-written implementation whose numbers earlier results report."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from walt_bench.tokenizer.metrics import psnr, ssim


def test_psnr_of_a_known_error():
    x = torch.zeros(2, 3, 3, 8, 8)  # 0.5 grey in [0, 1]
    y = x + 0.2  # +0.1 in [0, 1] units -> MSE 0.01 -> 20 dB
    torch.testing.assert_close(psnr(y, x), torch.full((2,), 20.0), rtol=0, atol=1e-4)


def test_ssim_is_one_for_identical_clips_and_lower_for_noisy_ones():
    x = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(ssim(x, x), torch.ones(2), rtol=0, atol=1e-5)
    assert (ssim((x + 0.5 * torch.randn_like(x)).clamp(-1, 1), x) < 0.9).all()


@pytest.mark.parametrize("a, b", [(0.2, 0.6), (0.5, 0.5), (0.9, 0.1)])
def test_ssim_of_constant_frames_is_the_luminance_term(a, b):
    # constant images: variances and covariance vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    x = torch.full((1, 1, 3, 16, 16), 2 * a - 1)
    y = torch.full((1, 1, 3, 16, 16), 2 * b - 1)
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-5)


def test_psnr_is_averaged_per_frame():
    x = torch.zeros(1, 2, 3, 4, 4)
    y = x.clone()
    y[:, 0] += 0.2  # frame 0: 20 dB; frame 1: perfect (capped at MSE 1e-10 -> 100 dB)
    assert psnr(y, x).item() == pytest.approx((20.0 + 100.0) / 2, abs=1e-3)
    assert not math.isinf(psnr(x, x).item())


def reported_psnr(x_hat, x):
    """The hand-written PSNR that tokenizer results reported before torchmetrics (kept as the reference)."""
    unit = lambda v: ((v.float() + 1) / 2).clamp(0, 1)
    mse = (unit(x_hat) - unit(x)).pow(2).mean(dim=(2, 3, 4)).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean(dim=1)


def reported_ssim(x_hat, x, window=11, sigma=1.5):
    """The hand-written SSIM (valid 11x11 Gaussian windows, float64) that results reported before."""
    unit = lambda v: ((v.double() + 1) / 2).clamp(0, 1)
    a = rearrange(unit(x_hat), "b t c h w -> (b t c) 1 h w")
    r = rearrange(unit(x), "b t c h w -> (b t c) 1 h w")
    g = torch.exp(-((torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :])[None, None]
    mu_a, mu_r = F.conv2d(a, k), F.conv2d(r, k)
    var_a, var_r = F.conv2d(a * a, k) - mu_a**2, F.conv2d(r * r, k) - mu_r**2
    cov = F.conv2d(a * r, k) - mu_a * mu_r
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_r + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_r**2 + c1) * (var_a + var_r + c2))
    return s.reshape(x.shape[0], -1).mean(dim=1).float()


def test_torchmetrics_psnr_and_ssim_match_the_numbers_reported_before():
    x = torch.rand(3, 2, 3, 20, 24) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    y[0, 1] = x[0, 1]  # one exact frame: the 100 dB cap
    torch.testing.assert_close(psnr(y, x), reported_psnr(y, x), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ssim(y, x), reported_ssim(y, x), rtol=1e-5, atol=1e-6)
