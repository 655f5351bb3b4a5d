"""Reference statistics: the real data behind FVD/FID, computed once per identity and cached, or read from a
statistics file that is checked against the evaluation asking for it.

Where the real features come from, in order: ``eval.reference_stats`` (a ``walt-bench eval stats`` file,
refused when made under other settings; a pytorch-fid file or ADM reference batch, used unverified; an ADM
batch of images only, featurised), the ``references`` array of the samples file (rFVD), or
``reference_samples`` clips per set of ``reference_split`` read through the data layer in a seeded order
(cached under ``eval.cache_dir``, keyed by everything that changes them). With
``reference_sets=per_repeat`` there is one set per repeat (MAGVIT: 4 x 10,000 UCF-101 train clips).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from walt_bench.errors import DataError, UserError
from walt_bench.evaluation.evaluate import MetricAccumulator, check_sample_file, run_batches, sample_batches
from walt_bench.evaluation.extractors import Extractor
from walt_bench.evaluation.frechet import RunningStats
from walt_bench.evaluation.protocols import Settings
from walt_bench.evaluation.statsfile import (
    STATS_FORMAT,
    ReferenceStats,
    StatsMismatchError,
    check_matches,
    read_stats,
    write_stats,
)

# ---------------------------------------------------------------------------------------- real data


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


def dataset_fingerprint(dataset, root: str | Path | None = None) -> str:
    """sha256 of the (file name, label) list of a dataset, names relative to ``root`` (so the same data under
    another folder has the same identity): changes when a split list or annotation CSV does."""
    digest = hashlib.sha256()
    samples = getattr(dataset, "samples", None)
    if samples is None:
        digest.update(f"{type(dataset).__name__}:{len(dataset)}".encode())
        return digest.hexdigest()
    base = Path(root).resolve() if root is not None else None
    for path, label in samples:
        name = Path(path)
        if base is not None and name.is_absolute() and name.resolve().is_relative_to(base):
            name = name.resolve().relative_to(base)
        digest.update(f"{name.as_posix()}\t{label}\n".encode())
    return digest.hexdigest()


def dataset_batches(spec, split: str, count: int, batch_size: int, dataset=None) -> Iterator[torch.Tensor]:
    """``count`` real clips of ``split`` through the data layer, in a seeded order; epochs repeat with new
    clip windows when the split holds fewer videos than ``count`` (4 x 10,000 UCF-101 clips from 9,537 videos)."""
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


# ------------------------------------------------------------------------------- reference statistics


def identity(spec, settings: Settings, extractor: Extractor) -> dict:
    """What reference statistics for this evaluation must have been made with (see ``statsfile.CHECKED``)."""
    data = spec.data
    return dict(
        walt_bench_stats=STATS_FORMAT,
        protocol=settings.protocol.name,
        extractor=extractor.kind,
        extractor_backend=extractor.backend,
        weights_sha256=extractor.weights_sha256,
        covariance=settings.covariance,
        reference_sets=settings.reference_sets if settings.repeats > 1 else None,
        sets=settings.reference_repeats,
        num_samples=settings.reference_samples,
        dataset=data.dataset,
        split=settings.reference_split,
        fold=data.fold,
        frames=data.num_frames,
        height=data.height,
        width=data.width,
        dim=extractor.feature_dim,
    )


CACHE_KEY_VERSION = 3  # bump when the key or the statistics computation changes


def cache_key(
    spec, settings: Settings, extractor: Extractor, fingerprint: str, features: bool = False
) -> dict:
    """Everything that changes reference statistics: the data (root, split, fold, list/CSV contents, clip
    geometry and sampling), the protocol and its counts and sets, and the extractor (kind, backend, weights)."""
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
        sets=settings.reference_repeats,
        offset=settings.frame_offset,
        covariance=settings.covariance,
        seed=spec.run.seed,
        extractor=(extractor.kind, extractor.backend, extractor.weights_sha256),
        features=features,
    )


def _cache_path(
    spec, settings: Settings, extractor: Extractor, fingerprint: str, features: bool = False
) -> Path:
    key = cache_key(spec, settings, extractor, fingerprint, features)
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
    keep_features: bool = False,
) -> ReferenceStats:
    """The real-data reference sets: ``eval.reference_stats`` (checked against this evaluation), the samples'
    ``references``, or the cached/computed statistics of ``reference_samples`` clips of ``reference_split``
    per set (``settings.reference_repeats`` sets). ``keep_features``: also the feature rows (for KID)."""
    from walt_bench.evaluation.samples import has_array

    expected = identity(spec, settings, extractor)
    given = spec.eval.reference_stats
    if use_given and given and has_array(given, "arr_0") and not has_array(given, "mu"):
        return _from_arrays(spec, settings, extractor, given, "arr_0", progress, keep_features)  # ADM images
    if use_given and given:
        return _given(given, settings, expected, keep_features)
    if samples is not None and has_array(samples, "references"):
        return _from_arrays(spec, settings, extractor, samples, "references", progress, keep_features)

    dataset = reference_dataset(spec, settings.reference_split)
    fingerprint = dataset_fingerprint(dataset, spec.data.root)
    path = _cache_path(spec, settings, extractor, fingerprint, keep_features)
    if path.is_file():
        try:
            stats = read_stats(path, with_features=keep_features)
            check_matches(stats, {**expected, "data_fingerprint": fingerprint}, str(path))
        except UserError as exc:  # a broken or stale cache entry is recomputed, not fatal
            warnings.warn(f"ignoring cached statistics: {exc}", RuntimeWarning, stacklevel=2)
        else:
            if stats.sets == settings.reference_repeats and (not keep_features or stats.features is not None):
                stats.info = {"source": str(path), "cached": True, "verified": True}
                return stats
    acc = MetricAccumulator(
        extractor, None, settings, settings.reference_samples, settings.reference_repeats, keep_features
    )
    count = settings.reference_samples * settings.reference_repeats
    batches = dataset_batches(spec, settings.reference_split, count, spec.eval.batch_size, dataset)
    what = f"real clips of {spec.data.dataset}/{settings.reference_split}"
    run_batches(batches, acc, settings, "reference features", progress, what)
    meta = {k: v for k, v in expected.items() if k != "dim"}
    stats = _finish(acc, settings, {**meta, "data_fingerprint": fingerprint, "spec_hash": spec.hash})
    write_stats(path, stats)
    stats.info = {"source": str(path), "cached": False, "verified": True}
    return stats


def _given(location, settings: Settings, expected: dict, keep_features: bool) -> ReferenceStats:
    """``eval.reference_stats``: refused when it was made under other settings or holds the wrong sets."""
    stats = read_stats(location, with_features=keep_features)
    source = f"eval.reference_stats={location}"
    check_matches(stats, expected, source)
    if stats.sets != settings.reference_repeats:
        if stats.sets == 1:
            raise StatsMismatchError(
                f"{source} holds one reference set; this evaluation compares each of its {settings.repeats} "
                "repeats with its own real set (eval.reference_sets=per_repeat, MAGVIT's protocol). Make per-repeat "
                "statistics with `walt-bench eval stats`, or set eval.reference_sets=shared to compare every "
                "repeat with this one set (results then say so)."
            )
        raise StatsMismatchError(
            f"{source} holds {stats.sets} reference sets; this evaluation needs {settings.reference_repeats} "
            f"(eval.repeats={settings.repeats}, eval.reference_sets={settings.reference_sets})."
        )
    note = (
        None
        if stats.verified
        else (
            "the file records no protocol, extractor or weights (pytorch-fid / ADM layout): not verified to match"
        )
    )
    stats.info = {"source": str(location), "verified": stats.verified, "note": note}
    return stats


def _from_arrays(
    spec, settings: Settings, extractor: Extractor, location, key: str, progress: bool, keep_features: bool
) -> ReferenceStats:
    """Reference statistics of the clips/images stored under ``key`` of a samples/reference ``.npz``."""
    rows = check_sample_file(location, settings, key)
    sets = settings.reference_repeats
    per_set = min(settings.reference_samples, len(rows) // sets)
    if per_set < 2:
        raise DataError(
            f"{location}:{key} holds {len(rows)} clips; {sets} reference set(s) need at least 2 each"
        )
    acc = MetricAccumulator(extractor, None, settings, per_set, sets, keep_features)
    batches = sample_batches(location, spec.eval.batch_size, per_set * sets, key)
    run_batches(batches, acc, settings, "reference features", progress, f"the clips in {location}:{key}")
    meta = {
        k: v for k, v in identity(spec, settings, extractor).items() if k not in ("dim", "dataset", "split")
    }
    stats = _finish(acc, settings, {**meta, "num_samples": per_set, "dataset": f"{location}:{key}"})
    stats.info = {"source": f"{location}:{key}", "verified": True}
    return stats


def _finish(acc: MetricAccumulator, settings: Settings, meta: dict) -> ReferenceStats:
    for stats in acc.stats:
        if stats.count < 2:
            raise DataError(f"reference statistics need at least 2 clips per set, got {stats.count}")
    pooled = RunningStats.pooled(acc.stats)
    features = [acc.feature_rows(r) for r in range(acc.repeats)] if acc.features is not None else None
    return ReferenceStats(
        mu=[s.mean.copy() for s in acc.stats],
        sigma=[s.covariance(settings.covariance) for s in acc.stats],
        meta=meta,
        features=features,
        pooled=(pooled.mean, pooled.covariance(settings.covariance)),
    )
