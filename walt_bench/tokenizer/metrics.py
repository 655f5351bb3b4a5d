"""Reconstruction metrics of the tokenizer: PSNR and SSIM per frame, averaged (pixels ``(B, T, 3, H, W)`` in [-1, 1]).

Both map pixels to [0, 1] first (data range 1). SSIM follows Wang et al. 2004: an 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, valid (unpadded) windows, the mean over channels and positions, as in
``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per clip ``(B,)``: ``10 log10(1 / MSE)`` per frame on [0, 1] pixels, averaged over frames."""
    mse = (_unit(x_hat) - _unit(x)).pow(2).mean(dim=(2, 3, 4)).clamp_min(1e-10)  # (B, T)
    return (10 * torch.log10(1.0 / mse)).mean(dim=1)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(x_hat: torch.Tensor, x: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per clip ``(B,)`` (Wang et al. 2004, Eq. 13), per frame and channel, averaged."""
    b = x.shape[0]
    a = rearrange(_unit(x_hat).double(), "b t c h w -> (b t c) 1 h w")  # float64: E[x^2] - mu^2 cancels
    r = rearrange(_unit(x).double(), "b t c h w -> (b t c) 1 h w")
    k = _gaussian_window(window, sigma).to(a)[None, None]
    mu_a, mu_r = F.conv2d(a, k), F.conv2d(r, k)
    var_a = F.conv2d(a * a, k) - mu_a**2
    var_r = F.conv2d(r * r, k) - mu_r**2
    cov = F.conv2d(a * r, k) - mu_a * mu_r
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_r + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_r**2 + c1) * (var_a + var_r + c2))
    return s.reshape(b, -1).mean(dim=1).float()
