"""Latent cache: the tokenizer's latents of a whole dataset, sharded and memory-mapped, plus normalisation stats.

Written once by ``walt-bench tokenizer encode`` and read by the diffusion trainer (W.A.L.T §5.3 normalises the
latents per channel before the transformer: ``(z - mean) / std``). Layout of a cache directory::

    manifest.json            format version, count, latent shape (t, c, h, w), dtype, shards, stats, + metadata
                             given by the writer (spec hash, tokenizer checkpoint hash, ...)
    stats.json               per-channel mean and std over every latent element of the dataset
    shard_00000.npy ...      latents (n_i, t, c, h, w), read with numpy memory mapping
    labels.npy, is_image.npy, index.npy     (N,) int64 / bool / int64

How it is written (so that many processes can write one cache, and a stopped encode resumes): shard k holds
the clips of rows ``plan[k]`` (:func:`walt_bench.data.shards.plan_shards`); it is written into ``DIR.tmp/`` by
:func:`write_latent_shard`, batch by batch into a memory map (memory: one batch), beside
``shard_k.meta.npz`` (its labels, flags, indices and its per-channel float64 sum, sum of squares and element
count), which is written last and marks the shard complete. :func:`finish_latent_cache` sums the shards'
statistics in shard order (exact: the same float64 sums whatever the number of writers), writes the labels,
stats and manifest and renames ``DIR.tmp`` to ``DIR``, so a reader never sees a half cache.

Usage::

    write_latent_cache("cache/ucf101-c8", batches, metadata={"spec_hash": spec.hash})   # one process
    cache = LatentCache("cache/ucf101-c8")
    item = cache[0]                      # {"latent": (t, c, h, w), "label", "is_image", "index"}
    z = (item["latent"] - cache.mean[:, None, None]) / cache.std[:, None, None]
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.data.shards import save_npz_atomic
from walt_bench.errors import DataError, storage_error

FORMAT_VERSION = 1


class ChannelStats:
    """Running per-channel sums in float64 over ``(B, t, c, h, w)`` batches; :meth:`merge` adds others exactly
    (sums and counts, not means), so per-shard or per-rank statistics combine into the whole dataset's."""

    def __init__(self, total=None, total_sq=None, n: int = 0):
        self.sum, self.sumsq, self.n = total, total_sq, int(n)

    def update(self, z: np.ndarray) -> None:
        z = z.astype(np.float64)
        s, sq = z.sum(axis=(0, 1, 3, 4)), (z * z).sum(axis=(0, 1, 3, 4))
        self.merge(ChannelStats(s, sq, z.shape[0] * z.shape[1] * z.shape[3] * z.shape[4]))

    def merge(self, other: ChannelStats) -> None:
        if other.sum is None:
            return
        self.sum = other.sum.copy() if self.sum is None else self.sum + other.sum
        self.sumsq = other.sumsq.copy() if self.sumsq is None else self.sumsq + other.sumsq
        self.n += other.n

    def result(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and population std."""
        mean = self.sum / self.n
        var = np.maximum(self.sumsq / self.n - mean * mean, 0.0)
        return mean.tolist(), np.sqrt(var).tolist()


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def shard_file(k: int) -> str:
    return f"shard_{k:05d}.npy"


def _meta_path(folder: Path, k: int) -> Path:
    return folder / f"shard_{k:05d}.meta.npz"


def write_latent_shard(
    folder: str | Path,
    k: int,
    rows: range,
    batches: Iterable[Mapping[str, Any]],
    *,
    dtype: str = "float32",
    skipped=lambda: 0,
    unreadable: Sequence[Mapping[str, str]] = (),
) -> None:
    """Shard ``k`` of a cache being written in ``folder``: the clips of ``batches`` read from source ``rows``
    (``{"latent": (B, t, c, h, w), "label", "is_image", "index"}``; at most ``len(rows)``, fewer when unreadable
    files were left out), then its meta file (the completion mark). ``skipped()`` is read at the end: unreadable
    files left out while reading this shard's rows; ``unreadable`` their paths and reasons."""
    folder = Path(folder)
    stats, done, out = ChannelStats(), 0, None
    labels, is_image, index = [], [], []
    tmp = folder / f".{shard_file(k)}.{os.getpid()}.tmp"
    for batch in batches:
        z = _to_numpy(batch["latent"])
        if z.ndim != 5:
            raise ValueError(f"latent batch must be (B, t, c, h, w), got {z.shape}")
        if out is None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(rows), *z.shape[1:]))
        elif tuple(z.shape[1:]) != out.shape[1:]:
            raise ValueError(
                f"latent shape changed within the cache: {out.shape[1:]} then {tuple(z.shape[1:])}"
            )
        if done + len(z) > len(rows):
            raise ValueError(f"shard {k}: more than the {len(rows)} clips of rows {rows.start}..{rows.stop}")
        out[done : done + len(z)] = z
        stats.update(z)
        done += len(z)
        labels.append(_to_numpy(batch["label"]).astype(np.int64).reshape(-1))
        is_image.append(_to_numpy(batch["is_image"]).astype(bool).reshape(-1))
        index.append(_to_numpy(batch["index"]).astype(np.int64).reshape(-1))
    if out is None:  # every clip of these rows was unreadable
        np.save(tmp.with_suffix(".npy"), np.zeros((0,), dtype=dtype))
        os.replace(tmp.with_suffix(".npy"), folder / shard_file(k))
    elif done < len(rows):  # unreadable clips were left out: keep only the rows written
        out.flush()
        kept = tmp.with_name(tmp.name + ".kept.npy")
        np.save(kept, out[:done])
        del out
        tmp.unlink()
        os.replace(kept, folder / shard_file(k))
    else:
        out.flush()
        del out
        os.replace(tmp, folder / shard_file(k))
    save_npz_atomic(
        _meta_path(folder, k),
        start=np.int64(rows.start),
        stop=np.int64(rows.stop),
        label=np.concatenate(labels),
        is_image=np.concatenate(is_image),
        index=np.concatenate(index),
        sum=stats.sum,
        sumsq=stats.sumsq,
        n=np.int64(stats.n),
        skipped=np.int64(skipped()),
        count=np.int64(done),
        unreadable=np.array(json.dumps(list(unreadable))),
    )


def finished_latent_shards(folder: str | Path, plan: Sequence[range]) -> set[int]:
    """Shard numbers of ``plan`` already written in ``folder`` (meta file present, with the planned rows)."""
    folder, done = Path(folder), set()
    for k, rows in enumerate(plan):
        meta = _meta_path(folder, k)
        if not (meta.is_file() and (folder / shard_file(k)).is_file()):
            continue
        try:
            with np.load(meta) as m:
                if range(int(m["start"]), int(m["stop"])) == rows:
                    done.add(k)
        except (OSError, ValueError, KeyError, EOFError):
            pass
    return done


def finish_latent_cache(
    folder: str | Path,
    path: str | Path,
    plan: Sequence[range],
    *,
    dtype: str = "float32",
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge the shards of ``plan`` written in ``folder`` (= ``path.tmp``) into the cache ``path``: labels,
    exact stats (float64 sums in shard order), manifest; then rename. Returns the manifest."""
    folder, path = Path(folder), Path(path)
    missing = sorted(set(range(len(plan))) - finished_latent_shards(folder, plan))
    if missing:
        raise DataError(
            f"latent cache {path}: shards {missing} were not written; run the encode again to finish"
        )
    stats, shards, skipped, shape, unreadable = ChannelStats(), [], 0, None, []
    labels, is_image, index = [], [], []
    for k, rows in enumerate(plan):
        with np.load(_meta_path(folder, k)) as m:
            if int(m["n"]):
                stats.merge(ChannelStats(m["sum"], m["sumsq"], int(m["n"])))
            labels.append(m["label"])
            is_image.append(m["is_image"])
            index.append(m["index"])
            skipped += int(m["skipped"])
            written = int(m["count"]) if "count" in m else len(rows)
            unreadable += json.loads(str(m["unreadable"])) if "unreadable" in m else []
        if not written:
            continue
        own = tuple(np.load(folder / shard_file(k), mmap_mode="r").shape[1:])
        if shape is not None and own != shape:
            raise DataError(f"latent cache {path}: shard {k} holds latents {own}, earlier shards {shape}")
        shape = own
        shards.append({"file": shard_file(k), "count": written})
    if shape is None:
        raise DataError(f"latent cache {path}: no readable clip in the split ({skipped} unreadable)")
    mean, std = stats.result()
    np.save(folder / "labels.npy", np.concatenate(labels))
    np.save(folder / "is_image.npy", np.concatenate(is_image))
    np.save(folder / "index.npy", np.concatenate(index))
    manifest = {
        "format_version": FORMAT_VERSION,
        "count": sum(s["count"] for s in shards),
        "latent_shape": list(shape),
        "dtype": dtype,
        "shards": shards,
        "stats": {"mean": mean, "std": std, "num_elements_per_channel": stats.n},
        "num_skipped": skipped,
        "unreadable": unreadable,
        **dict(metadata or {}),
    }
    for k in range(len(plan)):
        _meta_path(folder, k).unlink()
    (folder / "plan.json").unlink(missing_ok=True)
    old = path.with_name(path.name + ".old")
    try:
        (folder / "stats.json").write_text(json.dumps({"mean": mean, "std": std}, indent=2))
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if path.exists():  # the old cache stays whole until the new one is in place
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(folder, path)
    except BaseException as exc:  # a full disk names the cache; the old cache comes back
        if old.exists() and not path.exists():
            os.replace(old, path)
        friendly = storage_error(exc, path, "the latent cache")
        if friendly is not None:
            raise friendly from exc
        raise
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def write_latent_cache(
    path: str | Path,
    batches: Iterable[Mapping[str, Any]],
    *,
    shard_size: int = 1024,
    dtype: str = "float32",
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write batches ``{"latent": (B, t, c, h, w), "label": (B,), "is_image": (B,), "index": (B,)}`` to ``path``
    from one process (batches of any size; shards of ``shard_size`` clips). Stats are accumulated in float64
    over every latent element of every clip (population std). Memory: one shard. Returns the manifest (also
    stored as ``manifest.json``)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"latent cache {path} already exists; delete it or pass overwrite=True (--overwrite)")
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plan: list[range] = []
    pending: list[dict[str, np.ndarray]] = []
    held, shape = 0, None

    def flush(final: bool) -> None:
        nonlocal pending, held
        while held >= shard_size or (final and held):
            n = min(shard_size, held)
            joined = {key: np.concatenate([p[key] for p in pending]) for key in pending[0]}
            part = {key: v[:n] for key, v in joined.items()}
            rest = {key: v[n:] for key, v in joined.items()}
            start = plan[-1].stop if plan else 0
            plan.append(range(start, start + n))
            write_latent_shard(tmp, len(plan) - 1, plan[-1], [part], dtype=dtype)
            pending, held = ([rest] if held > n else []), held - n

    for batch in batches:
        arrays = {key: _to_numpy(batch[key]) for key in ("latent", "label", "is_image", "index")}
        if arrays["latent"].ndim != 5:
            raise ValueError(f"latent batch must be (B, t, c, h, w), got {arrays['latent'].shape}")
        shape = shape or arrays["latent"].shape[1:]
        if arrays["latent"].shape[1:] != shape:
            raise ValueError(
                f"latent shape changed within the cache: {shape} then {arrays['latent'].shape[1:]}"
            )
        pending.append(arrays)
        held += len(arrays["latent"])
        flush(final=False)
    flush(final=True)
    if not plan:
        shutil.rmtree(tmp)
        raise DataError(f"no latents to write to {path}: the dataset yielded no batches")
    return finish_latent_cache(tmp, path, plan, dtype=dtype, metadata=metadata)


class LatentCache(torch.utils.data.Dataset):
    """Read a cache written by :func:`write_latent_cache`; items are ``{"latent": (t, c, h, w), "label",
    "is_image", "index"}``; ``.mean``/``.std`` are per-channel tensors ``(c,)``; ``.manifest`` the stored dict."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_file = self.path / "manifest.json"
        if not manifest_file.is_file():
            raise DataError(
                f"no latent cache at {self.path} (missing manifest.json); write one with "
                "`walt-bench tokenizer encode --spec FILE`"
            )
        self.manifest = json.loads(manifest_file.read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"latent cache {self.path} has format {self.manifest.get('format_version')}, expected "
                f"{FORMAT_VERSION}; re-encode it with `walt-bench tokenizer encode`"
            )
        try:
            self._shards = [np.load(self.path / s["file"], mmap_mode="r") for s in self.manifest["shards"]]
            self.labels = np.load(self.path / "labels.npy")
            self.is_image = np.load(self.path / "is_image.npy")
            self.indices = np.load(self.path / "index.npy")
        except (OSError, ValueError) as e:
            raise DataError(f"latent cache {self.path} is incomplete or corrupt: {e}; re-encode it") from e
        self._offsets = np.cumsum([0] + [len(s) for s in self._shards])
        if self._offsets[-1] != self.manifest["count"] or len(self.labels) != self.manifest["count"]:
            raise DataError(
                f"latent cache {self.path}: manifest says {self.manifest['count']} clips, shards hold "
                f"{int(self._offsets[-1])} and labels {len(self.labels)}; re-encode it"
            )
        self.mean = torch.tensor(self.manifest["stats"]["mean"], dtype=torch.float32)
        self.std = torch.tensor(self.manifest["stats"]["std"], dtype=torch.float32)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """``(t, c, h, w)`` of every item."""
        return tuple(self.manifest["latent_shape"])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a latent cache of {len(self)} clips")
        s = int(np.searchsorted(self._offsets, i, side="right")) - 1
        latent = torch.from_numpy(np.array(self._shards[s][i - self._offsets[s]], dtype=np.float32))
        return {
            "latent": latent,
            "label": int(self.labels[i]),
            "is_image": bool(self.is_image[i]),
            "index": int(self.indices[i]),
        }

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Per-channel ``(z - mean) / std`` for latents ``(..., c, h, w)`` (§5.3 latent normalisation)."""
        return (z - self.mean.to(z)[:, None, None]) / self.std.to(z)[:, None, None]

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        return z * self.std.to(z)[:, None, None] + self.mean.to(z)[:, None, None]
