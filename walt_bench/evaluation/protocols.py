"""Named metric protocols: which extractor, how many samples, which frames, which reference data.

Each protocol reproduces one published evaluation setting; the spec (``eval.*``) may override counts, never
the preprocessing. Results record the protocol, the counts actually used, the extractor and its weights hash.

- ``ucf101_fvd`` — MAGVIT's UCF-101 class-conditional protocol, which W.A.L.T reports (Table 1, 3): 16 frames
  at 128x128, 4 repeats of 10,000 generated clips, mean ± std over repeats. Each repeat has its own 10,000
  real clips of the train split (40,000 in all): MAGVIT's ``frechet_distance_from_logits`` reshapes both
  feature sets into ``num_repeats`` groups and pairs them. ``eval.reference_sets=shared`` (one real set for
  every repeat) is a named option; it shrinks the reported ± and every result says which was used. FVD
  features are I3D Kinetics-400 logits after the reference preprocessing (TF1 bilinear to 224x224, [-1, 1]);
  IS uses C3D (tgan2's checkpoint as re-implemented by MAGVIT), one score per repeat, mean ± std.
- ``k600_fvd`` — Kinetics-600 frame prediction: 5 conditioning frames + 11 predicted frames = 16, FVD over the
  full 16-frame clips (the context frames are the real ones, as in the standard protocol of Luc et al. /
  MAGVIT). Generated at 128x128, the clips (and the real ones) are first resized to 64x64 with TF1's
  ``resize_bilinear`` (no antialiasing, no half-pixel centres: MAGVIT's ``eval.image_resize`` calls
  ``metrics_lib.resize_bilinear``), to compare with prior 64x64 work, then go through the FVD preprocessing.
  At 128 -> 64 this keeps every other pixel (rows and columns 0, 2, 4, ...). 50,000 clips of the test
  split, 1 repeat.
- ``imagenet_fid50k`` — ADM's evaluator (Dhariwal & Nichol 2021), which W.A.L.T adopts for Table 2: 50,000
  samples at 256x256, InceptionV3 pool_3 features, FID against the reference batch's ``mu``/``sigma`` (or its
  images, ``arr_0``), IS = softmax(pool_3 @ W) without bias in chunks of 5,000, mean over chunks.
- ``rfvd`` — reconstruction FVD of the tokenizer (Table 3f): reconstructions vs the real clips they encode,
  16 frames, I3D as for FVD; paper is silent on the count, we use 10,000 clips. The originals come from the
  ``references`` array of ``samples.npz`` when present (else from the train split through the data layer);
  ``walt-bench tokenizer eval`` computes it in-process through :mod:`walt_bench.evaluation.rfvd`.
- ``synthetic_fvd`` — the embedded synthetic dataset has no Kinetics-trained network, so a small classifier
  trained on it (``walt-bench eval train-classifier``) supplies features and logits. Its numbers are labelled
  ``FVD-synthetic`` / ``IS-synthetic`` and are not comparable with any published FVD or IS. Clips must have
  the spec's ``data.num_frames`` x ``data.height`` x ``data.width``.

Every clip (generated or real) is checked against the protocol's geometry before features are extracted
(:func:`check_clips`): a 3-frame clip or a 300x300 frame is an error, not an FVD.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from walt_bench.errors import DataError, UserError

ReferenceSets = Literal["per_repeat", "shared"]


@dataclass(frozen=True)
class Protocol:
    name: str
    metric: str  # label of the Fréchet metric in results ("FVD", "FID", "rFVD", "FVD-synthetic")
    extractor: str  # "i3d" | "inception" | "synthetic"
    is_metric: str | None  # label of the Inception-Score-like metric, None = not computed
    is_extractor: str | None  # "c3d" | "inception" | "synthetic"
    is_split: str  # "repeat" (one score per repeat) | "chunk5000" (ADM: 5,000-sample chunks, mean)
    num_frames: int | None  # frames evaluated per clip (1 for images, None = the spec's data.num_frames)
    context_frames: int  # conditioning frames included in the clip (K600: 5)
    size: tuple[int, int] | None  # (H, W) the clips must have; None = any (rfvd) / the spec's data size
    intermediate_size: tuple[int, int] | None  # TF1 resize before the extractor's own preprocessing (K600)
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
        size=(128, 128),
        intermediate_size=None,
        num_samples=10_000,
        repeats=4,
        reference_split="train",
        reference="UCF-101 train-split clips, 10,000 per repeat (MAGVIT)",
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
        size=(128, 128),
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
        size=(256, 256),
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
        size=None,
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
        size=None,
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
    """A protocol with the spec's overrides applied (what one evaluation actually uses)."""

    protocol: Protocol
    num_samples: int
    repeats: int
    reference_samples: int  # real clips per reference set
    reference_split: str
    reference_sets: ReferenceSets  # one real set per repeat (MAGVIT) or one for all repeats
    frame_offset: int
    covariance: str
    num_frames: int | None  # frames the extractor sees (the protocol's, or data.num_frames for synthetic)
    size: tuple[int, int] | None  # (H, W) every clip must have; None = not checked

    @property
    def reference_repeats(self) -> int:
        """How many real sets the reference statistics hold."""
        return self.repeats if self.reference_sets == "per_repeat" else 1


def resolve(eval_cfg, data_cfg=None) -> Settings:
    """Apply ``eval.*`` overrides (None = protocol value) to the named protocol; ``data_cfg`` (the spec's
    ``data`` section) supplies the clip geometry of protocols that take it from the data (synthetic)."""
    proto = get_protocol(eval_cfg.protocol)
    num = eval_cfg.num_samples or proto.num_samples
    num_frames, size = proto.num_frames, proto.size
    if proto.name == "synthetic_fvd" and data_cfg is not None:
        num_frames, size = data_cfg.num_frames, (data_cfg.height, data_cfg.width)
    return Settings(
        protocol=proto,
        num_samples=num,
        repeats=eval_cfg.repeats or proto.repeats,
        reference_samples=eval_cfg.reference_samples or num,
        reference_split=eval_cfg.reference_split or proto.reference_split,
        reference_sets=getattr(eval_cfg, "reference_sets", None) or "per_repeat",
        frame_offset=eval_cfg.frame_offset,
        covariance=eval_cfg.covariance,
        num_frames=num_frames,
        size=size,
    )


EXTRA_FRAMES = 1  # W.A.L.T makes 1 + T frames (17 for a 16-frame protocol); one frame more is accepted


def check_clips(frames: int, height: int, width: int, settings: Settings, what: str = "clips") -> None:
    """Reject clips whose geometry does not fit the protocol (frame count, resolution), naming both.

    A protocol of F frames accepts clips of F or F + 1 frames after ``eval.frame_offset`` (the model's 1 + T
    layout) and exactly its (H, W); images (F = 1) must be single frames.
    """
    proto, start, need = settings.protocol, settings.frame_offset, settings.num_frames
    problems = []
    if need is not None:
        allowed = (1,) if need == 1 else tuple(range(need, need + EXTRA_FRAMES + 1))
        if frames - start not in allowed:
            after = f" after eval.frame_offset={start}" if start else ""
            problems.append(
                f"{frames} frames (it evaluates {need} frame(s): clips of {' or '.join(map(str, allowed))} "
                f"frames{after})"
            )
    if settings.size is not None and (height, width) != tuple(settings.size):
        problems.append(
            f"{height}x{width} frames (the protocol expects {settings.size[0]}x{settings.size[1]})"
        )
    if problems:
        source = (
            "the spec's data.num_frames/height/width" if proto.name == "synthetic_fvd" else "the protocol"
        )
        raise DataError(
            f"{what} do not fit protocol {proto.name}: {'; '.join(problems)}. The geometry comes from {source}; "
            "a number computed on other clips is not comparable. Generate clips of the protocol's geometry, or "
            "choose the protocol that matches them."
        )
