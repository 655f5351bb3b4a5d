"""Reconstruction metrics of the tokenizer: PSNR and SSIM per frame, averaged per clip (pixels ``(B, T, 3, H, W)``
in [-1, 1]), computed by torchmetrics (``torchmetrics.functional.image``), the well-kept implementation.

Both map pixels to [0, 1] first (data range 1). SSIM follows Wang et al. 2004: an 11x11 Gaussian window with
sigma 1.5, K1 = 0.01, K2 = 0.03, the mean over channels and valid positions (windows inside the frame), as in
``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` and as our
results always reported. torchmetrics' own mean also counts the windows it centres on border pixels of a
reflect-padded frame (~0.3% higher or lower on 20x24 noise), so we take its SSIM map and average the valid part. SSIM runs in
float64 (its ``E[x^2] - mu^2`` terms cancel). PSNR of an exact frame is capped at 100 dB (MSE 1e-10), so a
perfect frame does not make a clip's mean infinite.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

PSNR_CAP_DB = 100.0  # = 10 log10(1 / 1e-10)


def _frames(x: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, T, 3, H, W) in [-1, 1] -> (B*T, 3, H, W) in [0, 1]."""
    return rearrange(((x.to(dtype) + 1) / 2).clamp(0, 1), "b t c h w -> (b t) c h w")


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per clip ``(B,)``: ``10 log10(1 / MSE)`` per frame on [0, 1] pixels, averaged over frames."""
    b = x.shape[0]
    per_frame = peak_signal_noise_ratio(
        _frames(x_hat), _frames(x), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return per_frame.clamp(max=PSNR_CAP_DB).reshape(b, -1).mean(dim=1)


def ssim(x_hat: torch.Tensor, x: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per clip ``(B,)`` (Wang et al. 2004, Eq. 13), per frame (channels and valid positions averaged),
    then averaged over frames."""
    b, pad = x.shape[0], (window - 1) // 2
    _, ssim_map = structural_similarity_index_measure(
        _frames(x_hat, torch.float64),
        _frames(x, torch.float64),
        gaussian_kernel=True,
        sigma=sigma,
        kernel_size=window,
        data_range=1.0,
        k1=0.01,
        k2=0.03,
        reduction="none",
        return_full_image=True,
    )  # (B*T, 3, H, W): windows centred on every pixel, reflect-padded at the border
    valid = ssim_map[..., pad:-pad, pad:-pad]  # windows inside the frame only (skimage; earlier results)
    return valid.reshape(b, -1).mean(dim=1).float()
