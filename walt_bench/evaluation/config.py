"""Spec section ``eval``: which metric protocol, how many samples, and where extractor weights live.

Protocols (``walt_bench.evaluation.protocols``) fix the reference settings; the fields left ``None`` here take
the protocol's value, so a spec only sets what it changes (e.g. ``eval.num_samples=64`` for a smoke run).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from walt_bench.config import NonNegativeInt, PositiveInt, Section

ProtocolName = Literal["ucf101_fvd", "k600_fvd", "imagenet_fid50k", "rfvd", "synthetic_fvd"]


class EvalConfig(Section):
    protocol: ProtocolName = Field(
        "ucf101_fvd",
        description="Named evaluation protocol: ucf101_fvd (FVD + C3D IS, MAGVIT's UCF-101 setting), k600_fvd "
        "(frame prediction, 5 context frames), imagenet_fid50k (ADM's FID/IS), rfvd (tokenizer reconstructions), "
        "synthetic_fvd (FVD-synthetic/IS-synthetic with a classifier trained on the synthetic dataset).",
    )
    num_samples: PositiveInt | None = Field(
        None,
        description="Generated clips per repeat; None = the protocol's (UCF-101: 10,000; ImageNet: 50,000).",
    )
    repeats: PositiveInt | None = Field(
        None, description="Repeats for mean ± std; None = the protocol's (MAGVIT's UCF-101 protocol: 4)."
    )
    reference_samples: PositiveInt | None = Field(
        None,
        description="Real clips behind the reference statistics; None = num_samples. Paper is silent; MAGVIT "
        "pairs every generated batch with a real batch, so we default to the same count.",
    )
    reference_sets: Literal["per_repeat", "shared"] | None = Field(
        None,
        description="Real clips behind the repeats: per_repeat (each repeat against its own reference_samples "
        "real clips, MAGVIT's UCF-101 protocol: 4 x 10,000) or shared (one real set for every repeat; a "
        "smaller ± and a noisier mean). None = per_repeat. Every result records which was used.",
    )
    reference_split: str | None = Field(
        None, description="Data split of the real clips; None = the protocol's (UCF-101: train, K600: test)."
    )
    reference_stats: str | None = Field(
        None,
        description="Precomputed reference statistics: a `walt-bench eval stats` file (its protocol, extractor, "
        "weights SHA-256, covariance, counts and data must match this evaluation, else exit 2), a pytorch-fid "
        ".npz (mu, sigma; not verifiable) or an ADM reference batch. None = computed from data.* and cached.",
    )
    cache_dir: str = Field(
        ".cache/walt_bench/stats",
        description="Where reference statistics are cached, keyed by everything that changes them: dataset, "
        "root, split, fold, the split's file list, clip geometry and sampling, protocol, counts, seed and the "
        "extractor's weights hash.",
    )
    frame_offset: NonNegativeInt = Field(
        0,
        description="First frame of the evaluated window when clips are longer than the protocol's 16 frames "
        "(the model makes 1+T = 17). Paper is silent; we evaluate frames 0..15.",
    )
    covariance: Literal["sample", "population"] = Field(
        "sample",
        description="Covariance estimator: sample (÷(N-1); tfgan, pytorch-fid, MAGVIT) or population (÷N; "
        "StyleGAN-V's FVD).",
    )
    kid: bool = Field(
        True,
        description="Also report KID (torchmetrics' KernelInceptionDistance on the same features: cubic polynomial "
        "kernel, unbiased MMD^2 over random subsets) beside FID/FVD, when the real features are at hand. It keeps "
        "every feature row (float32; 50,000 x 2048 = 400 MB for ImageNet, also in the statistics cache): "
        "false skips it.",
    )
    kid_subsets: PositiveInt = Field(
        100, description="KID: number of random subsets (torchmetrics' default)."
    )
    kid_subset_size: PositiveInt = Field(
        1000, description="KID: clips per subset (torchmetrics' default; capped at the smaller set)."
    )
    batch_size: PositiveInt = Field(16, description="Clips per extractor forward pass (memory stays flat).")
    i3d_weights: str | None = Field(
        None,
        description="I3D (Kinetics-400) for FVD: TorchScript i3d_torchscript.pt (StyleGAN-V), a state dict of "
        "walt_bench.evaluation.i3d.InceptionI3d, or a TF-Hub handle/SavedModel dir (tfhub extra). None = "
        "$WALT_I3D_WEIGHTS or $WALT_WEIGHTS_DIR/i3d_torchscript.pt.",
    )
    i3d_backend: Literal["auto", "torchscript", "state_dict", "tfhub"] = Field(
        "auto",
        description="How to read i3d_weights; auto decides from the file (SavedModel dir/handle = tfhub).",
    )
    inception_weights: str | None = Field(
        None,
        description="InceptionV3 for FID/IS in the pt_inception-2015-12-05 layout. None = "
        "$WALT_INCEPTION_WEIGHTS or $WALT_WEIGHTS_DIR/pt_inception-2015-12-05-6726825d.pth.",
    )
    c3d_weights: str | None = Field(
        None,
        description="C3D (Sports-1M, fine-tuned on UCF-101) for the UCF-101 IS: StyleGAN-V's TorchScript "
        "c3d_ucf101.pt or a state dict made by `walt-bench eval convert-c3d` from MAGVIT's c3d_ucf101.flax. "
        "None = $WALT_C3D_WEIGHTS or $WALT_WEIGHTS_DIR/c3d_ucf101.pt.",
    )
    classifier_weights: str | None = Field(
        None,
        description="Synthetic-data classifier for FVD-synthetic/IS-synthetic (walt-bench eval train-classifier). "
        "None = $WALT_SYNTHETIC_CLASSIFIER or <run.out_dir>/synthetic_classifier.pt.",
    )
    classifier_epochs: PositiveInt = Field(
        30,
        description="train-classifier epochs over the synthetic train split, a fresh random clip window per "
        "epoch (about 2-4 CPU minutes; paper is silent, this is our tool).",
    )
    classifier_width: PositiveInt = Field(32, description="train-classifier base channel width.")
