"""Named metric protocols: which extractor, how many samples, which frames, which reference data.

Each protocol reproduces one published evaluation setting; the spec (``eval.*``) may override counts, never
the preprocessing. Results record the protocol, the counts actually used, the extractor and its weights hash.

- ``ucf101_fvd`` — MAGVIT's UCF-101 class-conditional protocol, which W.A.L.T reports (Table 1, 3): 16 frames
  at 128x128, 10,000 generated clips vs clips of the train split, 4 repeats, mean ± std. FVD features are I3D
  Kinetics-400 logits after the reference preprocessing (TF1 bilinear to 224x224, [-1, 1]); IS uses C3D
  (tgan2's checkpoint as re-implemented by MAGVIT), one score per repeat of 10,000, mean ± std.
- ``k600_fvd`` — Kinetics-600 frame prediction: 5 conditioning frames + 11 predicted frames = 16, FVD over the
  full 16-frame clips (the context frames are the real ones, as in the standard protocol of Luc et al. /
  MAGVIT). Generated at 128x128, the clips (and the real ones) are first resized to 64x64 with
  ``jax.image.resize``'s antialiased bilinear filter, as MAGVIT does to compare with prior 64x64 work, then
  go through the FVD preprocessing. 50,000 clips of the test split, 1 repeat.
- ``imagenet_fid50k`` — ADM's evaluator (Dhariwal & Nichol 2021), which W.A.L.T adopts for Table 2: 50,000
  samples, InceptionV3 pool_3 features, FID against the reference batch's ``mu``/``sigma`` (or its images,
  ``arr_0``), IS = softmax(pool_3 @ W) without bias in chunks of 5,000, mean over chunks.
- ``rfvd`` — reconstruction FVD of the tokenizer (Table 3f): reconstructions vs the real clips they encode,
  16 frames at 128x128, I3D as for FVD; paper is silent on the count, we use 10,000 clips. The originals come
  from the ``references`` array of ``samples.npz`` when present (else from the train split through the data
  layer); ``walt-bench tokenizer eval`` computes it in-process with the same extractor and statistics.
- ``synthetic_fvd`` — the embedded synthetic dataset has no Kinetics-trained network, so a small classifier
  trained on it (``walt-bench eval train-classifier``) supplies features and logits. Its numbers are labelled
  ``FVD-synthetic`` / ``IS-synthetic`` and are not comparable with any published FVD or IS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from walt_bench.errors import UserError


@dataclass(frozen=True)
class Protocol:
    name: str
    metric: str  # label of the Fréchet metric in results ("FVD", "FID", "rFVD", "FVD-synthetic")
    extractor: str  # "i3d" | "inception" | "synthetic"
    is_metric: str | None  # label of the Inception-Score-like metric, None = not computed
    is_extractor: str | None  # "c3d" | "inception" | "synthetic"
    is_split: str  # "repeat" (one score per repeat) | "chunk5000" (ADM: 5,000-sample chunks, mean)
    num_frames: int | None  # frames evaluated per clip (1 for images, None = the whole clip)
    context_frames: int  # conditioning frames included in the clip (K600: 5)
    intermediate_size: tuple[int, int] | None  # resize before the extractor's own preprocessing (K600: 64x64)
    num_samples: int
    repeats: int
    reference_split: str
    reference: str  # what the reference statistics come from, in words

    def to_dict(self) -> dict:
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    "ucf101_fvd": Protocol(
        name="ucf101_fvd",
        metric="FVD",
        extractor="i3d",
        is_metric="IS",
        is_extractor="c3d",
        is_split="repeat",
        num_frames=16,
        context_frames=0,
        intermediate_size=None,
        num_samples=10_000,
        repeats=4,
        reference_split="train",
        reference="UCF-101 train-split clips (MAGVIT)",
    ),
    "k600_fvd": Protocol(
        name="k600_fvd",
        metric="FVD",
        extractor="i3d",
        is_metric=None,
        is_extractor=None,
        is_split="repeat",
        num_frames=16,
        context_frames=5,
        intermediate_size=(64, 64),
        num_samples=50_000,
        repeats=1,
        reference_split="test",
        reference="Kinetics-600 test clips, 5 real context + 11 real frames",
    ),
    "imagenet_fid50k": Protocol(
        name="imagenet_fid50k",
        metric="FID",
        extractor="inception",
        is_metric="IS",
        is_extractor="inception",
        is_split="chunk5000",
        num_frames=1,
        context_frames=0,
        intermediate_size=None,
        num_samples=50_000,
        repeats=1,
        reference_split="train",
        reference="ADM reference batch (VIRTUAL_imagenet256_labeled.npz)",
    ),
    "rfvd": Protocol(
        name="rfvd",
        metric="rFVD",
        extractor="i3d",
        is_metric=None,
        is_extractor=None,
        is_split="repeat",
        num_frames=16,
        context_frames=0,
        intermediate_size=None,
        num_samples=10_000,
        repeats=1,
        reference_split="train",
        reference="the real clips that were reconstructed",
    ),
    "synthetic_fvd": Protocol(
        name="synthetic_fvd",
        metric="FVD-synthetic",
        extractor="synthetic",
        is_metric="IS-synthetic",
        is_extractor="synthetic",
        is_split="repeat",
        num_frames=None,
        context_frames=0,
        intermediate_size=None,
        num_samples=256,
        repeats=1,
        reference_split="train",
        reference="synthetic dataset, train split",
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UserError(f"unknown eval protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None


@dataclass(frozen=True)
class Settings:
    """A protocol with the spec's count overrides applied (what one evaluation actually uses)."""

    protocol: Protocol
    num_samples: int
    repeats: int
    reference_samples: int
    reference_split: str
    frame_offset: int
    covariance: str


def resolve(eval_cfg) -> Settings:
    """Apply ``eval.*`` overrides (None = protocol value) to the named protocol."""
    proto = get_protocol(eval_cfg.protocol)
    num = eval_cfg.num_samples or proto.num_samples
    return Settings(
        protocol=proto,
        num_samples=num,
        repeats=eval_cfg.repeats or proto.repeats,
        reference_samples=eval_cfg.reference_samples or num,
        reference_split=eval_cfg.reference_split or proto.reference_split,
        frame_offset=eval_cfg.frame_offset,
        covariance=eval_cfg.covariance,
    )
