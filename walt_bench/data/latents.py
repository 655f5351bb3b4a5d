"""Latent cache: the tokenizer's latents of a whole dataset, sharded and memory-mapped, plus normalisation stats.

Written once by ``walt-bench tokenizer encode`` and read by the diffusion trainer (W.A.L.T §5.3 normalises the
latents per channel before the transformer: ``(z - mean) / std``). Layout of a cache directory::

    manifest.json            format version, count, latent shape (t, c, h, w), dtype, shards, stats, + metadata
                             given by the writer (spec hash, tokenizer checkpoint hash, ...)
    stats.json               per-channel mean and std over every latent element of the dataset
    shard_00000.npy ...      latents (n_i, t, c, h, w), read with numpy memory mapping
    labels.npy, is_image.npy, index.npy     (N,) int64 / bool / int64

Usage::

    write_latent_cache("cache/ucf101-c8", batches, metadata={"spec_hash": spec.hash})
    cache = LatentCache("cache/ucf101-c8")
    item = cache[0]                      # {"latent": (t, c, h, w), "label", "is_image", "index"}
    z = (item["latent"] - cache.mean[:, None, None]) / cache.std[:, None, None]
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.errors import DataError, storage_error

FORMAT_VERSION = 1


class _ChannelStats:
    """Running per-channel sums in float64 over ``(B, t, c, h, w)`` batches."""

    def __init__(self):
        self.n = 0
        self.sum: np.ndarray | None = None
        self.sumsq: np.ndarray | None = None

    def update(self, z: np.ndarray) -> None:
        z = z.astype(np.float64)
        s, sq = z.sum(axis=(0, 1, 3, 4)), (z * z).sum(axis=(0, 1, 3, 4))
        self.sum = s if self.sum is None else self.sum + s
        self.sumsq = sq if self.sumsq is None else self.sumsq + sq
        self.n += z.shape[0] * z.shape[1] * z.shape[3] * z.shape[4]

    def result(self) -> tuple[list[float], list[float]]:
        mean = self.sum / self.n
        var = np.maximum(self.sumsq / self.n - mean * mean, 0.0)
        return mean.tolist(), np.sqrt(var).tolist()


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def write_latent_cache(
    path: str | Path,
    batches: Iterable[Mapping[str, Any]],
    *,
    shard_size: int = 1024,
    dtype: str = "float32",
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write batches ``{"latent": (B, t, c, h, w), "label": (B,), "is_image": (B,), "index": (B,)}`` to ``path``.

    Shards hold ``shard_size`` clips each; stats are accumulated in float64 over every latent element of every
    clip (population std). The cache is written to ``path.tmp`` and renamed at the end, so a crash never leaves
    a half cache behind. Returns the manifest (also stored as ``manifest.json``).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"latent cache {path} already exists; delete it or pass overwrite=True (--overwrite)")
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        stats, shards = _ChannelStats(), []
        pending: list[np.ndarray] = []
        labels, is_image, index = [], [], []
        shape: tuple[int, ...] | None = None

        def flush(final: bool) -> None:
            """Write every full shard in ``pending`` (and, when ``final``, the remainder)."""
            if not pending:
                return
            data = np.concatenate(pending).astype(dtype)
            pending.clear()
            while len(data) >= shard_size or (final and len(data)):
                part, data = data[:shard_size], data[shard_size:]
                name = f"shard_{len(shards):05d}.npy"
                np.save(tmp / name, part)
                shards.append({"file": name, "count": int(len(part))})
            if len(data):
                pending.append(data)

        for batch in batches:
            z = _to_numpy(batch["latent"])
            if z.ndim != 5:
                raise ValueError(f"latent batch must be (B, t, c, h, w), got {z.shape}")
            if shape is None:
                shape = tuple(z.shape[1:])
            elif tuple(z.shape[1:]) != shape:
                raise ValueError(f"latent shape changed within the cache: {shape} then {tuple(z.shape[1:])}")
            stats.update(z)
            pending.append(z)
            labels.append(_to_numpy(batch["label"]).astype(np.int64).reshape(-1))
            is_image.append(_to_numpy(batch["is_image"]).astype(bool).reshape(-1))
            index.append(_to_numpy(batch["index"]).astype(np.int64).reshape(-1))
            if sum(len(p) for p in pending) >= shard_size:
                flush(final=False)
        flush(final=True)
        if shape is None:
            shutil.rmtree(tmp)
            raise DataError(f"no latents to write to {path}: the dataset yielded no batches")
        mean, std = stats.result()
        np.save(tmp / "labels.npy", np.concatenate(labels))
        np.save(tmp / "is_image.npy", np.concatenate(is_image))
        np.save(tmp / "index.npy", np.concatenate(index))
        count = sum(s["count"] for s in shards)
        manifest = {
            "format_version": FORMAT_VERSION,
            "count": count,
            "latent_shape": list(shape),
            "dtype": dtype,
            "shards": shards,
            "stats": {"mean": mean, "std": std, "num_elements_per_channel": stats.n},
            **dict(metadata or {}),
        }
        (tmp / "stats.json").write_text(json.dumps({"mean": mean, "std": std}, indent=2))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if path.exists():  # the old cache stays whole until the new one is in place
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as exc:  # leave nothing half-written behind; a full disk names the cache
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        friendly = storage_error(exc, path, "the latent cache")
        if friendly is not None:
            raise friendly from exc
        raise
    shutil.rmtree(old, ignore_errors=True)
    return manifest


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
