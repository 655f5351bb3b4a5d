"""Kernel Inception Distance (Bińkowski et al. 2018) through torchmetrics, on features we already extracted.

torchmetrics' :class:`~torchmetrics.image.kid.KernelInceptionDistance` is the well-kept implementation: the
unbiased MMD^2 with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over ``subsets``
random subsets of ``subset_size`` rows of each set. It is given an identity "feature network" because our
extractors (I3D, InceptionV3, C3D, the synthetic classifier) already produced the features; nothing of
torch-fidelity (which torchmetrics' default extractor needs) is touched. Subsets are drawn from a seeded
generator, so a result is reproducible.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from walt_bench.errors import DataError


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict:
    """KID of two (N, d) feature sets: ``{"value", "subset_std", "subsets", "subset_size"}`` (float64)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise DataError(
            f"KID needs at least 2 feature rows per set, got {len(real)} real and {len(fake)} generated"
        )
    with warnings.catch_warnings():  # "will save all extracted features": we hand it exactly those
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=subsets, subset_size=size)
    metric.update(torch.as_tensor(np.asarray(real), dtype=torch.float64), real=True)
    metric.update(torch.as_tensor(np.asarray(fake), dtype=torch.float64), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"value": float(mean), "subset_std": float(std), "subsets": subsets, "subset_size": size}
