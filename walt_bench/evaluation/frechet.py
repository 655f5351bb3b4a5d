"""The Fréchet distance between two Gaussians fitted to feature sets (FID, FVD, rFVD share it).

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)

(Heusel et al. 2017, eq. 6; Unterthiner et al. 2018 for videos). The trace of the geometric mean is
computed with two symmetric eigendecompositions in float64, never ``scipy.linalg.sqrtm``:
``S1^1/2 S2 S1^1/2`` is symmetric positive semi-definite and has the same eigenvalues as ``S1 S2``,
so ``tr((S1 S2)^1/2) = sum_i sqrt(lambda_i)``. Eigenvalues that round-off pushes below zero (rank-deficient
covariances, N < d) are clipped to 0, which keeps the result real and stable.

Covariances are sample covariances (divide by N - 1), as in tfgan (the reference FVD), pytorch-fid and
torchmetrics. StyleGAN-V's FVD divides by N: ask for ``ddof=0`` ("population") by name.

Statistics files (pytorch-fid's ``.npz`` layout plus the identity of what made them) live in
:mod:`walt_bench.evaluation.statsfile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from walt_bench.errors import DataError

Covariance = Literal["sample", "population"]


def _ddof(covariance: Covariance) -> int:
    if covariance not in ("sample", "population"):
        raise ValueError(f"covariance must be 'sample' or 'population', got {covariance!r}")
    return 1 if covariance == "sample" else 0


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (float64, eigh, clipped)."""
    sym = 0.5 * (np.asarray(matrix, dtype=np.float64) + np.asarray(matrix, dtype=np.float64).T)
    eigval, eigvec = np.linalg.eigh(sym)
    root = np.sqrt(np.clip(eigval, 0.0, None))
    return (eigvec * root) @ eigvec.T


def _is_diagonal(matrix: np.ndarray) -> bool:
    """True only when every off-diagonal entry is exactly 0 (a NaN off the diagonal counts as non-zero)."""
    return not np.any(matrix[~np.eye(matrix.shape[0], dtype=bool)])


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((S1^1/2 S2 S1^1/2)^1/2) = tr((S1 S2)^1/2) for PSD S1, S2 (float64).

    Two exactly diagonal matrices take the closed form sum_i sqrt(a_i) sqrt(b_i) (no eigendecomposition);
    each variance is clipped at 0 on its own, exactly as the general route clips the eigenvalues of S1, so
    the shortcut and the general route agree even on slightly non-PSD (round-off) input.
    """
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if _is_diagonal(sigma1) and _is_diagonal(sigma2):
        roots = np.sqrt(np.clip(np.diag(sigma1), 0.0, None)) * np.sqrt(np.clip(np.diag(sigma2), 0.0, None))
        return float(roots.sum())
    root1 = sqrtm_psd(sigma1)
    middle = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    eigval = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    return float(np.sqrt(np.clip(eigval, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); >= 0 (Heusel et al. 2017, eq. 6).

    Means may come as (d,) or (1, d) (both layouts exist in saved statistics); covariances must be (d, d).
    """
    mu1, mu2 = np.asarray(mu1, np.float64).reshape(-1), np.asarray(mu2, np.float64).reshape(-1)
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise DataError(
            f"Fréchet distance needs statistics of one feature size: got mu {mu1.shape} / {mu2.shape}, "
            f"sigma {sigma1.shape} / {sigma2.shape}. Compute both with the same extractor."
        )
    for name, value in (("mu", mu1), ("mu", mu2), ("sigma", sigma1), ("sigma", sigma2)):
        if not np.all(np.isfinite(value)):
            raise DataError(
                f"Fréchet distance got a {name} with NaN or infinite entries; the features behind it are broken "
                "(e.g. a diverged model or corrupt statistics file). Recompute the statistics."
            )
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    # The true value is a squared distance (>= 0); round-off on identical sets can give -1e-12.
    return float(max(value, 0.0))


def feature_statistics(
    features: np.ndarray, covariance: Covariance = "sample"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, d) features in float64 (÷(N-1) by default, ÷N for 'population')."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise DataError(f"need at least 2 feature vectors of shape (N, d), got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False, ddof=_ddof(covariance))


@dataclass
class RunningStats:
    """Streaming mean and covariance in float64 (Chan et al.'s pairwise update); memory O(d^2).

    ``update(batch)`` merges a batch of (B, d) features; ``mean``/``covariance()`` equal the statistics
    of all rows seen, whatever the batching.
    """

    dim: int
    count: int = 0
    mean: np.ndarray = field(init=False)
    scatter: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.dim, dtype=np.float64)
        self.scatter = np.zeros((self.dim, self.dim), dtype=np.float64)

    def update(self, batch) -> None:
        x = np.asarray(batch, dtype=np.float64).reshape(-1, self.dim)
        nb = x.shape[0]
        if nb == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        delta = mean_b - self.mean
        total = self.count + nb
        self.scatter += centred.T @ centred + np.outer(delta, delta) * (self.count * nb / total)
        self.mean += delta * (nb / total)
        self.count = total

    @classmethod
    def pooled(cls, parts: list[RunningStats]) -> RunningStats:
        """The statistics of every row of ``parts`` together (the same pairwise update, per part)."""
        out = cls(parts[0].dim)
        for part in parts:
            if part.count == 0:
                continue
            total = out.count + part.count
            delta = part.mean - out.mean
            out.scatter = (
                out.scatter + part.scatter + np.outer(delta, delta) * (out.count * part.count / total)
            )
            out.mean = out.mean + delta * (part.count / total)
            out.count = total
        return out

    def covariance(self, covariance: Covariance = "sample") -> np.ndarray:
        ddof = _ddof(covariance)
        if self.count - ddof <= 0:
            raise DataError(f"covariance needs at least {ddof + 1} samples, got {self.count}")
        return self.scatter / (self.count - ddof)
