"""PSNR and SSIM of reconstructions, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

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
