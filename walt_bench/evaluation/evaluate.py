"""From samples (and real data) to metrics: streaming features, reference statistics, FD and IS per repeat.

    walt-bench eval stats --spec experiments/tables/ucf101.yaml --out stats/ucf101_train_i3d.npz
    walt-bench eval --spec experiments/tables/ucf101.yaml --samples runs/ucf101/samples

Clips go through :func:`prepare` (the protocol's frame window and intermediate resize), then the extractor
(its own reference preprocessing). Features accumulate into float64 running mean/covariance per repeat; logits
into running Inception-Score sums, so memory stays flat for any sample count.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from walt_bench.errors import DataError, UserError, WeightsError
from walt_bench.evaluation.extractors import Extractor
from walt_bench.evaluation.frechet import RunningStats, frechet_distance, load_stats, save_stats
from walt_bench.evaluation.inception_score import InceptionScore
from walt_bench.evaluation.protocols import Settings
from walt_bench.evaluation.resize import resize_bilinear_antialias

ADM_IS_CHUNK = 5000


def prepare(video: torch.Tensor, settings: Settings) -> torch.Tensor:
    """(B, T, 3, H, W) -> the protocol's window of frames, resized to its intermediate size if it has one."""
    proto, start = settings.protocol, settings.frame_offset
    if proto.num_frames is not None:
        if video.shape[1] < start + proto.num_frames:
            raise DataError(
                f"protocol {proto.name} evaluates {proto.num_frames} frames from frame {start}, but the clips "
                f"have {video.shape[1]} frames. Generate longer clips or lower eval.frame_offset."
            )
        video = video[:, start : start + proto.num_frames]
    if proto.intermediate_size is not None:
        video = resize_bilinear_antialias(video, proto.intermediate_size)
    return video


class MetricAccumulator:
    """Running Fréchet statistics (and IS sums) for ``repeats`` consecutive groups of ``per_repeat`` clips."""

    def __init__(
        self, fd: Extractor, is_: Extractor | None, settings: Settings, per_repeat: int, repeats: int
    ):
        self.fd, self.is_, self.settings = fd, is_, settings
        self.per_repeat, self.repeats, self.seen = per_repeat, repeats, 0
        self.stats = [RunningStats(fd.feature_dim) for _ in range(repeats)]
        split = ADM_IS_CHUNK if settings.protocol.is_split == "chunk5000" else None
        self.scores = (
            [InceptionScore(is_.num_classes, split or 1 << 62) for _ in range(repeats)] if is_ else []
        )

    @property
    def total(self) -> int:
        return self.per_repeat * self.repeats

    def update(self, video: torch.Tensor) -> None:
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
            if logits is not None:
                self.scores[repeat].update(logits[rows])
            start = stop
        self.seen += len(video)


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
) -> MetricAccumulator:
    from tqdm import tqdm

    with tqdm(total=acc.total, desc=desc, unit="clip", disable=not progress) as bar:
        for video in batches:
            before = acc.seen
            acc.update(prepare(video, settings))
            bar.update(acc.seen - before)
            if acc.seen >= acc.total:
                break
    return acc


def sample_batches(location, batch_size: int, limit: int, key: str | None = None) -> Iterator[torch.Tensor]:
    from walt_bench.evaluation.samples import open_samples, to_pixels

    for block in open_samples(location, key).iter_blocks(batch_size, limit):
        yield to_pixels(block)


def reference_dataset(spec, split: str):
    """The real-data split behind reference statistics.

    UCF-101 is a fixed benchmark archive: a video its split list names but that is missing on disk would
    silently change the reference set, so it is an error here (training only warns; `walt-bench data check`
    lists them). Kinetics clips disappear from YouTube, so there the missing ones are left out, as is standard.
    """
    from walt_bench.data.loader import build_dataset

    dataset = build_dataset(spec.data, split=split)
    missing = [path for path, _ in getattr(dataset, "missing", [])]
    if spec.data.dataset == "ucf101" and missing:
        raise DataError(
            f"UCF-101 {split} (fold {spec.data.fold}) under {spec.data.root}: {len(missing)} video(s) named in the "
            f"split list are missing on disk, e.g. {missing[0]}. Reference statistics over an incomplete split "
            "are not the protocol's; restore the files (re-extract UCF101.rar) or fix the split list. "
            "`walt-bench data check --spec FILE` lists them all."
        )
    if len(dataset) == 0:
        raise DataError(f"{spec.data.dataset} split {split!r} under {spec.data.root} holds no clips.")
    return dataset


def dataset_fingerprint(dataset) -> str:
    """sha256 of the (file name, label) list of a dataset: changes when a split list or annotation CSV does."""
    digest = hashlib.sha256()
    samples = getattr(dataset, "samples", None)
    if samples is None:
        digest.update(f"{type(dataset).__name__}:{len(dataset)}".encode())
    else:
        for path, label in samples:
            digest.update(f"{Path(path).as_posix()}\t{label}\n".encode())
    return digest.hexdigest()


def dataset_batches(spec, split: str, count: int, batch_size: int, dataset=None) -> Iterator[torch.Tensor]:
    """``count`` real clips of ``split`` through the data layer, in a seeded order; epochs repeat with new
    clip windows when the split holds fewer videos than ``count``."""
    from walt_bench.data.base import ItemKey

    dataset = dataset if dataset is not None else reference_dataset(spec, split)
    rng = np.random.default_rng(spec.run.seed)
    keys: list[ItemKey] = []
    epoch = 0
    while len(keys) < count:
        keys += [ItemKey(int(i), spec.run.seed, epoch) for i in rng.permutation(len(dataset))]
        epoch += 1
    keys = keys[:count]

    loader = torch.utils.data.DataLoader(
        KeyedClips(dataset, keys), batch_size=batch_size, num_workers=spec.data.num_workers
    )
    yield from loader


class KeyedClips(torch.utils.data.Dataset):
    """The videos of ``dataset`` at the given item keys (picklable, for DataLoader workers)."""

    def __init__(self, dataset, keys: list):
        self.dataset, self.keys = dataset, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, j: int) -> torch.Tensor:
        return self.dataset[self.keys[j]]["video"]


CACHE_KEY_VERSION = 2  # bump when the key or the statistics computation changes


def cache_key(spec, settings: Settings, extractor: Extractor, fingerprint: str) -> dict:
    """Everything that changes reference statistics: the data (root, split, fold, list/CSV contents, clip
    geometry and sampling), the protocol and its counts, and the extractor (kind, backend, weights hash)."""
    data = spec.data
    return dict(
        version=CACHE_KEY_VERSION,
        dataset=data.dataset,
        root=str(Path(data.root).resolve()),
        annotations=str(Path(data.annotations).resolve()) if data.annotations else None,
        split=settings.reference_split,
        fold=data.fold,
        samples=fingerprint,
        frames=data.num_frames,
        frame_stride=data.frame_stride,
        clip_sampling=data.clip_sampling,
        size=(data.height, data.width),
        skip_unreadable=data.skip_unreadable,
        protocol=settings.protocol.name,
        n=settings.reference_samples,
        offset=settings.frame_offset,
        covariance=settings.covariance,
        seed=spec.run.seed,
        extractor=(extractor.kind, extractor.backend, extractor.weights_sha256),
    )


def _cache_path(spec, settings: Settings, extractor: Extractor, fingerprint: str) -> Path:
    key = cache_key(spec, settings, extractor, fingerprint)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{spec.data.dataset}-{settings.reference_split}-{settings.protocol.name}-{digest}.npz"
    return Path(spec.eval.cache_dir) / name


def reference_statistics(
    spec,
    settings: Settings,
    extractor: Extractor,
    *,
    samples=None,
    use_given: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Real-data (mu, sigma, meta): ``eval.reference_stats``, the samples' ``references``, or the cached/computed
    statistics of ``reference_samples`` clips of ``reference_split``."""
    from walt_bench.evaluation.samples import has_array

    given = spec.eval.reference_stats
    if use_given and given and has_array(given, "arr_0") and not has_array(given, "mu"):
        return _from_arrays(spec, settings, extractor, given, "arr_0", progress)  # ADM batch of images only
    if use_given and given:
        mu, sigma, meta = load_stats(given)
        return mu, sigma, {**meta, "source": given}
    if samples is not None and has_array(samples, "references"):
        return _from_arrays(spec, settings, extractor, samples, "references", progress)
    dataset = reference_dataset(spec, settings.reference_split)
    path = _cache_path(spec, settings, extractor, dataset_fingerprint(dataset))
    if path.is_file():
        try:
            mu, sigma, meta = load_stats(path)
        except DataError as exc:  # a broken cache entry is recomputed, not fatal
            warnings.warn(f"ignoring unreadable cached statistics: {exc}", RuntimeWarning, stacklevel=2)
        else:
            if mu.size == extractor.feature_dim and meta.get("num_samples") == settings.reference_samples:
                return mu, sigma, {**meta, "source": str(path), "cached": True}
    acc = MetricAccumulator(extractor, None, settings, settings.reference_samples, 1)
    batches = dataset_batches(
        spec, settings.reference_split, settings.reference_samples, spec.eval.batch_size, dataset
    )
    run_batches(batches, acc, settings, "reference features", progress)
    mu, sigma, meta = _finish(acc, settings, {"source": str(path), "cached": False})
    save_stats(
        path,
        mu,
        sigma,
        num_samples=acc.seen,
        protocol=settings.protocol.name,
        extractor=extractor.kind,
        weights_sha256=extractor.weights_sha256,
        split=settings.reference_split,
    )
    return mu, sigma, meta


def _from_arrays(spec, settings: Settings, extractor: Extractor, location, key: str, progress: bool):
    """Reference statistics of the clips/images stored under ``key`` of a samples/reference ``.npz``."""
    from walt_bench.evaluation.samples import open_samples

    count = min(len(open_samples(location, key)), settings.reference_samples)
    acc = MetricAccumulator(extractor, None, settings, count, 1)
    batches = sample_batches(location, spec.eval.batch_size, count, key)
    run_batches(batches, acc, settings, "reference features", progress)
    return _finish(acc, settings, {"source": f"{location}:{key}"})


def _finish(acc: MetricAccumulator, settings: Settings, meta: dict):
    stats = acc.stats[0]
    if stats.count < 2:
        raise DataError(f"reference statistics need at least 2 clips, got {stats.count}")
    return stats.mean.copy(), stats.covariance(settings.covariance), {**meta, "num_samples": stats.count}


def _summary(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "values": [float(v) for v in arr]}


def score_samples(
    spec, settings: Settings, fd: Extractor, is_: Extractor | None, samples, *, progress: bool = True
) -> dict:
    """FD (and IS) of the samples in ``samples`` against the reference statistics, per repeat."""
    from walt_bench.evaluation.samples import open_samples

    available = len(open_samples(samples))
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
    mu_r, sigma_r, ref_meta = reference_statistics(spec, settings, fd, samples=samples, progress=progress)
    acc = MetricAccumulator(fd, is_, settings, per_repeat, repeats)
    run_batches(
        sample_batches(samples, spec.eval.batch_size, acc.total), acc, settings, "sample features", progress
    )
    proto = settings.protocol
    fds = [frechet_distance(s.mean, s.covariance(settings.covariance), mu_r, sigma_r) for s in acc.stats]
    result = {
        "protocol": proto.to_dict(),
        "metric": proto.metric,
        proto.metric: _summary(fds),
        "num_samples": per_repeat,
        "repeats": repeats,
        "below_protocol_count": available < wanted,
        "covariance": settings.covariance,
        "frame_offset": settings.frame_offset,
        "reference": {**ref_meta, "split": settings.reference_split},
        "extractor": fd.describe(),
    }
    if is_ is not None:
        per_split = [s for acc_is in acc.scores for s in acc_is.scores()]
        if proto.is_split == "chunk5000":  # ADM reports the mean over 5,000-sample chunks
            result[proto.is_metric] = {**_summary(per_split), "chunk": ADM_IS_CHUNK}
        else:
            result[proto.is_metric] = _summary(per_split)
        result["is_extractor"] = is_.describe()
    return result


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
    e.g. the tokenizer's rFVD: ``fd_between(originals, reconstructions, build_extractor("i3d", spec.eval),
    resolve(spec.eval.model_copy(update={"protocol": "rfvd"})), 10_000)``."""
    stats = []
    for name, stream in (("real", real), ("generated", fake)):
        acc = run_batches(
            stream,
            MetricAccumulator(extractor, None, settings, count, 1),
            settings,
            f"{name} features",
            progress,
        )
        stats.append((acc.stats[0].mean, acc.stats[0].covariance(settings.covariance)))
    return frechet_distance(*stats[0], *stats[1])
