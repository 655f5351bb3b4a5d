"""Reconstruction FVD (rFVD, Table 3f): a tokenizer's reconstructions vs the real clips they encode.

    rfvd, note = start_rfvd(spec, device)      # None and the reason when it cannot be computed
    for real, recon in batches: rfvd.update(real, recon)
    rfvd.result()                              # {"metric": "rFVD", "value", "N", "extractor", ...}

The tokenizer stage (``walt-bench tokenizer eval``) streams its pairs here, in process; the same numbers come
from ``walt-bench eval`` with ``eval.protocol=rfvd`` on a samples file whose ``references`` are the originals.
Both sides go through :func:`walt_bench.evaluation.evaluate.prepare` (protocol geometry check, uint8
quantisation, the 16-frame window), then the ``rfvd`` protocol's I3D; with ``eval.protocol=synthetic_fvd`` the
synthetic-data classifier replaces I3D and the number is labelled ``rFVD-synthetic``.
"""

from __future__ import annotations

from typing import Any

import torch

from walt_bench.evaluation.extractors import Extractor
from walt_bench.evaluation.frechet import RunningStats, frechet_distance
from walt_bench.evaluation.protocols import Settings


class ReconstructionFD:
    """Running feature statistics of real clips and their reconstructions through one extractor."""

    def __init__(self, extractor: Extractor, settings: Settings, label: str):
        self.extractor, self.settings, self.label = extractor, settings, label
        self.real = RunningStats(extractor.feature_dim)
        self.recon = RunningStats(extractor.feature_dim)

    def update(self, real: torch.Tensor, recon: torch.Tensor) -> None:
        """Add a batch of (B, T, 3, H, W) originals and their reconstructions, both in [-1, 1]."""
        from walt_bench.evaluation.evaluate import _check_width, prepare

        for stats, clips, what in ((self.real, real, "real clips"), (self.recon, recon, "reconstructions")):
            features = self.extractor(prepare(clips, self.settings, what))["features"]
            _check_width(self.extractor, features, self.extractor.feature_dim, "features")
            stats.update(features)

    def result(self) -> dict[str, Any]:
        covariance = self.settings.covariance
        value = frechet_distance(
            self.recon.mean,
            self.recon.covariance(covariance),
            self.real.mean,
            self.real.covariance(covariance),
        )
        return {
            "metric": self.label,
            "value": value,
            "N": {"generated": self.recon.count, "reference": self.real.count},
            "protocol": self.settings.protocol.name,
            "covariance": covariance,
            "extractor": self.extractor.describe(),
        }


def rfvd_settings(spec) -> tuple[Settings, str, str]:
    """(settings, label, extractor kind): the ``rfvd`` protocol, or the synthetic one for the embedded data."""
    from walt_bench.evaluation.protocols import resolve

    synthetic = spec.eval.protocol == "synthetic_fvd"
    eval_cfg = spec.eval.model_copy(update={"protocol": "synthetic_fvd" if synthetic else "rfvd"})
    settings = resolve(eval_cfg, spec.data)
    return settings, ("rFVD-synthetic" if synthetic else "rFVD"), ("synthetic" if synthetic else "i3d")


def start_rfvd(spec, device) -> tuple[ReconstructionFD | None, str | None]:
    """The streaming rFVD for ``spec`` on ``device``, or ``(None, why not)``: images, clips that do not fit the
    protocol, or extractor weights that are missing or wrong (PSNR/SSIM still stand)."""
    from walt_bench.errors import UserError
    from walt_bench.evaluation.extractors import build_extractor, synthetic_classifier_path
    from walt_bench.evaluation.protocols import check_clips

    if spec.data.num_frames < 2:
        return None, "rFVD needs videos; data.num_frames is 1 (images)"
    settings, label, kind = rfvd_settings(spec)
    try:
        check_clips(
            spec.data.num_frames, spec.data.height, spec.data.width, settings, "the tokenizer's clips"
        )
        extractor = build_extractor(kind, spec.eval, device, synthetic_classifier_path(spec))
    except UserError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return ReconstructionFD(extractor, settings, label), None
