"""From samples (and real data) to metrics: streaming features, reference statistics, FD, KID and IS per repeat.

    walt-bench eval stats --spec experiments/tables/ucf101.yaml --out stats/ucf101_train_i3d.npz
    walt-bench eval --spec experiments/tables/ucf101.yaml --samples runs/ucf101/samples

Every clip, generated or real, goes through :func:`prepare`: its geometry is checked against the protocol,
it is quantised to uint8 levels exactly as ``walt-bench sample`` writes samples (so both sides see the same
pixels), then cut to the protocol's frame window and resized to its intermediate size, then handed to the
extractor (which applies its reference's own preprocessing). Features accumulate into float64 running
mean/covariance per repeat (and, for KID, the feature rows themselves); logits into running Inception-Score
sums, so memory stays flat for any sample count.

Repeats (MAGVIT's UCF-101 protocol: 4 x 10,000): with ``reference_sets=per_repeat`` (the default) repeat r is
compared with its own set of ``reference_samples`` real clips; with ``shared`` every repeat is compared with
one set (the sets come from :mod:`walt_bench.evaluation.reference`). Every result records which, and the counts N behind each number: the Fréchet distance is biased
upwards by a term that shrinks with N, so numbers made with different N are not comparable.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from walt_bench.errors import DataError, UserError, WeightsError
from walt_bench.evaluation.extractors import Extractor
from walt_bench.evaluation.frechet import RunningStats, frechet_distance
from walt_bench.evaluation.inception_score import InceptionScore
from walt_bench.evaluation.protocols import Settings, check_clips
from walt_bench.evaluation.resize import resize_bilinear_tf1

ADM_IS_CHUNK = 5000
RANGE_TOLERANCE = 1e-3  # pixels may overshoot [-1, 1] by this much (round-off), no more


# ------------------------------------------------------------------------------------------ pixels


def quantize(video: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] -> the nearest of the 256 uint8 levels, back in [-1, 1].

    The rule of ``walt-bench sample`` (``round((x + 1) * 127.5)``), so generated clips read from a samples file
    are unchanged and real clips from the data layer (resized, hence between levels) or reconstructions
    held in memory see the same quantisation before feature extraction. Values outside [-1, 1] (e.g. [0, 1]
    or [0, 255] pixels) are an error, not something to clip.
    """
    x = video.float()
    low, high = float(x.min()), float(x.max())
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE or not np.isfinite(low + high):
        raise DataError(
            f"pixels must be in [-1, 1] (the data layer's layout); got values in [{low:.4g}, {high:.4g}]. "
            "Convert [0, 1] pixels with 2x - 1 and [0, 255] pixels with x / 127.5 - 1."
        )
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round() / 127.5 - 1.0


def prepare(video: torch.Tensor, settings: Settings, what: str = "clips") -> torch.Tensor:
    """(B, T, 3, H, W) in [-1, 1] -> checked, quantised, the protocol's frame window, intermediate-resized."""
    check_clips(video.shape[1], video.shape[-2], video.shape[-1], settings, what)
    video = quantize(video)
    if settings.num_frames is not None:
        start = settings.frame_offset
        video = video[:, start : start + settings.num_frames]
    if settings.protocol.intermediate_size is not None:  # K600: MAGVIT's TF1 resize_bilinear to 64x64
        video = resize_bilinear_tf1(video, settings.protocol.intermediate_size)
    return video


# ------------------------------------------------------------------------------------- accumulating


class MetricAccumulator:
    """Running Fréchet statistics (IS sums, optionally feature rows for KID) for ``repeats`` consecutive
    groups of ``per_repeat`` clips."""

    def __init__(
        self,
        fd: Extractor,
        is_: Extractor | None,
        settings: Settings,
        per_repeat: int,
        repeats: int,
        keep_features: bool = False,
    ):
        self.fd, self.is_, self.settings = fd, is_, settings
        self.per_repeat, self.repeats, self.seen = per_repeat, repeats, 0
        self.stats = [RunningStats(fd.feature_dim) for _ in range(repeats)]
        self.features: list[list[np.ndarray]] | None = [[] for _ in range(repeats)] if keep_features else None
        split = ADM_IS_CHUNK if settings.protocol.is_split == "chunk5000" else None
        self.scores = (
            [InceptionScore(is_.num_classes, split or 1 << 62) for _ in range(repeats)] if is_ else []
        )

    @property
    def total(self) -> int:
        return self.per_repeat * self.repeats

    def update(self, video: torch.Tensor) -> None:
        """Add prepared clips (the output of :func:`prepare`)."""
        video = video[: self.total - self.seen]
        if len(video) == 0:
            return
        out = self.fd(video)
        _check_width(self.fd, out["features"], self.fd.feature_dim, "features")
        logits = out["logits"] if self.is_ is self.fd else (self.is_(video)["logits"] if self.is_ else None)
        if logits is not None:
            _check_width(self.is_, logits, self.is_.num_classes, "logits")
        per_clip = len(out["features"]) // len(video)
        start = 0
        while start < len(video):  # clips [start, stop) of this batch belong to one repeat
            repeat = (self.seen + start) // self.per_repeat
            stop = min(len(video), (repeat + 1) * self.per_repeat - self.seen)
            rows = slice(start * per_clip, stop * per_clip)
            self.stats[repeat].update(out["features"][rows])
            if self.features is not None:
                self.features[repeat].append(out["features"][rows].astype(np.float32))
            if logits is not None:
                self.scores[repeat].update(logits[rows])
            start = stop
        self.seen += len(video)

    def feature_rows(self, repeat: int) -> np.ndarray | None:
        if self.features is None:
            return None
        parts = self.features[repeat]
        return np.concatenate(parts) if parts else np.zeros((0, self.fd.feature_dim), np.float32)


def _check_width(extractor: Extractor, array: np.ndarray, width: int, what: str) -> None:
    """A network that returns the wrong vector size is the wrong weights file, not a bug to trace."""
    if array.ndim != 2 or array.shape[1] != width:
        raise WeightsError(
            f"{extractor.kind} network {extractor.weights} returned {what} of shape {tuple(array.shape)}; expected "
            f"(N, {width}). The weights file is not the expected {extractor.kind} network."
        )


def run_batches(
    batches: Iterable[torch.Tensor],
    acc: MetricAccumulator,
    settings: Settings,
    desc: str,
    progress: bool = True,
    what: str = "clips",
) -> MetricAccumulator:
    from tqdm import tqdm

    with tqdm(total=acc.total, desc=desc, unit="clip", disable=not progress) as bar:
        for video in batches:
            before = acc.seen
            acc.update(prepare(video, settings, what))
            bar.update(acc.seen - before)
            if acc.seen >= acc.total:
                break
    return acc


def sample_batches(location, batch_size: int, limit: int, key: str | None = None) -> Iterator[torch.Tensor]:
    from walt_bench.evaluation.samples import open_samples, to_pixels

    for block in open_samples(location, key).iter_blocks(batch_size, limit):
        yield to_pixels(block)


def check_sample_file(location, settings: Settings, key: str | None = None):
    """Open a samples array and check its geometry against the protocol before any feature is extracted."""
    from walt_bench.evaluation.samples import open_samples

    rows = open_samples(location, key)
    shape = rows.shape if len(rows.shape) == 5 else (rows.shape[0], 1, *rows.shape[1:])  # images: 1 frame
    check_clips(shape[1], shape[2], shape[3], settings, f"the clips in {location}:{rows.key}")
    return rows


# ------------------------------------------------------------------------------------------ scoring


def _summary(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "values": [float(v) for v in arr]}


def score_samples(
    spec, settings: Settings, fd: Extractor, is_: Extractor | None, samples, *, progress: bool = True
) -> dict:
    """FD, KID (and IS) of the samples in ``samples`` against the reference sets, per repeat."""
    available = len(check_sample_file(samples, settings))
    requested = spec.eval.num_samples
    if requested is not None and available < requested:
        raise UserError(
            f"{samples} holds {available} clips but eval.num_samples={requested} asks for {requested} per repeat. "
            f"Generate at least {requested} clips, or set eval.num_samples={available} (numbers from fewer clips "
            "are not comparable with published ones)."
        )
    wanted = settings.num_samples * settings.repeats
    repeats, per_repeat = settings.repeats, settings.num_samples
    if available < wanted:
        repeats = max(1, available // settings.num_samples)
        per_repeat = min(settings.num_samples, available)
        warnings.warn(
            f"{samples} holds {available} clips; protocol {settings.protocol.name} wants {settings.num_samples} x "
            f"{settings.repeats}. Using {repeats} x {per_repeat}: the numbers are not comparable with the paper's.",
            stacklevel=2,
        )
    from walt_bench.evaluation.reference import reference_statistics

    kid = spec.eval.kid
    ref = reference_statistics(spec, settings, fd, samples=samples, progress=progress, keep_features=kid)
    acc = MetricAccumulator(
        fd, is_, settings, per_repeat, repeats, keep_features=kid and ref.features is not None
    )
    batches = sample_batches(samples, spec.eval.batch_size, acc.total)
    run_batches(batches, acc, settings, "sample features", progress, f"the generated clips in {samples}")

    proto = settings.protocol
    which = [r if ref.sets > 1 else 0 for r in range(repeats)]  # the reference set of each repeat
    fds = [
        frechet_distance(s.mean, s.covariance(settings.covariance), ref.mu[w], ref.sigma[w])
        for s, w in zip(acc.stats, which)
    ]
    counts = {"generated": per_repeat, "reference": ref.meta.get("num_samples")}
    result = {
        "protocol": proto.to_dict(),
        "metric": proto.metric,
        proto.metric: {**_summary(fds), "N": counts},
        "num_samples": per_repeat,
        "repeats": repeats,
        "reference_sets": "shared" if ref.sets == 1 and repeats > 1 else "per_repeat",
        "below_protocol_count": available < wanted,
        "covariance": settings.covariance,
        "frame_offset": settings.frame_offset,
        "reference": {**ref.meta, **ref.info, "sets": ref.sets, "split": settings.reference_split},
        "extractor": fd.describe(),
    }
    if kid:
        result.update(_kid(spec, acc, ref, which, counts))
    if is_ is not None:
        per_split = [s for acc_is in acc.scores for s in acc_is.scores()]
        if proto.is_split == "chunk5000":  # ADM reports the mean over 5,000-sample chunks
            result[proto.is_metric] = {**_summary(per_split), "chunk": ADM_IS_CHUNK, "N": per_repeat}
        else:
            result[proto.is_metric] = {**_summary(per_split), "N": per_repeat}
        result["is_extractor"] = is_.describe()
    return result


def _kid(spec, acc: MetricAccumulator, ref, which: list[int], counts: dict) -> dict:
    """KID per repeat against the same reference set as its Fréchet distance (torchmetrics)."""
    from walt_bench.evaluation.kid import kernel_inception_distance

    if ref.features is None:
        return {
            "KID": None,
            "KID_note": "the reference statistics hold no feature rows (only mu/sigma), which KID needs; make "
            "them with `walt-bench eval stats` (eval.kid=true) or from the data",
        }
    runs = [
        kernel_inception_distance(
            ref.features[w],
            acc.feature_rows(r),
            subsets=spec.eval.kid_subsets,
            subset_size=spec.eval.kid_subset_size,
            seed=spec.run.seed + r,
        )
        for r, w in enumerate(which)
    ]
    return {
        "KID": {
            **_summary([k["value"] for k in runs]),
            "subset_std": [k["subset_std"] for k in runs],
            "subsets": runs[0]["subsets"],
            "subset_size": runs[0]["subset_size"],
            "N": counts,
            "features": acc.fd.kind,
        }
    }


def fd_between(
    real: Iterable[torch.Tensor],
    fake: Iterable[torch.Tensor],
    extractor: Extractor,
    settings: Settings,
    count: int,
    *,
    progress: bool = True,
) -> float:
    """Fréchet distance between two streams of (B, T, 3, H, W) clips in [-1, 1] (first ``count`` of each),
    each through :func:`prepare`. The tokenizer's streaming rFVD is :mod:`walt_bench.evaluation.rfvd`."""
    stats = []
    for name, stream in (("real", real), ("generated", fake)):
        acc = run_batches(
            stream,
            MetricAccumulator(extractor, None, settings, count, 1),
            settings,
            f"{name} features",
            progress,
            f"{name} clips",
        )
        stats.append((acc.stats[0].mean, acc.stats[0].covariance(settings.covariance)))
    return frechet_distance(*stats[0], *stats[1])
