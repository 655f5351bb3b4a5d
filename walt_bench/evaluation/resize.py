"""The two resizes the metric references use, each as separable (out, in) weight matrices.

Each resize is exact (a matrix product per axis), not an approximation with ``F.interpolate``:

- :func:`resize_bilinear_tf1` — TensorFlow 1 ``tf.image.resize_bilinear(align_corners=False)`` without
  half-pixel centres and without antialiasing: ``src = dst * in / out``, neighbours ``floor(src)`` and
  ``min(floor(src) + 1, in - 1)``. Used by the reference FVD (google-research ``frechet_video_distance``:
  resize to 224x224, no crop), by torch-fidelity's FID Inception (its
  ``interpolate_bilinear_2d_like_tensorflow1x`` to 299x299) and by MAGVIT's 128 -> 64 Kinetics-600 resize
  (``eval_utils`` ``image_resize`` -> ``metrics_lib.resize_bilinear``, written to match TF 1.x). At an exact
  2x downscale it keeps rows and columns 0, 2, 4, ... (no averaging, so noise frames keep their contrast:
  an antialiased resize would differ from it by tens of grey levels there).
- :func:`resize_bilinear_aligned` — Chainer's aligned-corner bilinear resize (``src = dst * (in-1)/(out-1)``),
  which MAGVIT's UCF-101 Inception Score code reproduces in front of the C3D network (tgan2's checkpoint).
"""

from __future__ import annotations

import numpy as np
import torch


def tf1_weights(size_in: int, size_out: int) -> np.ndarray:
    """(out, in) weights of TF1 bilinear resize with align_corners=False, half_pixel_centers=False."""
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    src = np.arange(size_out, dtype=np.float64) * (size_in / size_out)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    rows = np.arange(size_out)
    np.add.at(weights, (rows, lo), 1.0 - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights


def aligned_weights(size_in: int, size_out: int) -> np.ndarray:
    """(out, in) weights of aligned-corner bilinear resize (Chainer ``resize_images``, MAGVIT's C3D)."""
    if size_in == size_out:
        return np.eye(size_out)
    if size_out == 1 or size_in == 1:
        weights = np.zeros((size_out, size_in))
        weights[:, 0] = 1.0
        return weights
    src = np.arange(size_out, dtype=np.float64) * ((size_in - 1) / (size_out - 1))
    return np.maximum(0.0, 1.0 - np.abs(src[:, None] - np.arange(size_in)[None, :]))


def _apply(x: torch.Tensor, size: tuple[int, int], make) -> torch.Tensor:
    """Resize the last two axes (..., H, W) of a float tensor with separable weights from ``make``."""
    height, width = x.shape[-2:]
    if (height, width) == tuple(size):
        return x
    dtype = x.dtype if x.is_floating_point() else torch.float32
    wh = torch.as_tensor(make(height, size[0]), dtype=dtype, device=x.device)
    ww = torch.as_tensor(make(width, size[1]), dtype=dtype, device=x.device)
    return torch.einsum("...hw,oh,pw->...op", x.to(dtype), wh, ww)


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (no half-pixel centres, no crop) over the last two axes (..., H, W)."""
    return _apply(x, size, tf1_weights)


def resize_bilinear_aligned(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Aligned-corner bilinear resize over the last two axes (..., H, W)."""
    return _apply(x, size, aligned_weights)
