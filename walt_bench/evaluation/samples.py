"""Reading sample files in batches without loading them whole, and turning them into pixels.

``DIR/samples.npz`` (written by ``walt-bench sample``) holds ``videos`` uint8 (N, T, H, W, 3) and ``labels``
int64 (N,); an optional ``references`` uint8 array of the same layout holds real clips to compare against
(the tokenizer's rFVD writes reconstructions as ``videos`` and the originals as ``references``). ADM sample
and reference batches hold images as ``arr_0`` uint8 (N, H, W, 3); they read as 1-frame videos.

Arrays are streamed from the ``.npz`` member in row blocks, so memory stays flat for 10,000 clips.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from walt_bench.errors import DataError


def read_npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from an open ``.npy`` stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


class NpzRows:
    """Row-block reader of one array inside an ``.npz`` (stored or deflated)."""

    def __init__(self, path: str | Path, key: str):
        self.path, self.key = Path(path), key
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(f"{key}.npy") as fh:
                self.shape, self.fortran, self.dtype = read_npy_header(fh)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{self.path}:{key} is not a readable .npy array ({exc}); rewrite the file."
            ) from exc

    def __len__(self) -> int:
        return int(self.shape[0])

    def iter_blocks(self, rows: int, limit: int | None = None) -> Iterator[np.ndarray]:
        total = len(self) if limit is None else min(limit, len(self))
        if self.fortran:  # rare: no row-contiguous layout to stream, read it whole
            with np.load(self.path) as data:
                arr = data[self.key]
            for i in range(0, total, rows):
                yield arr[i : min(i + rows, total)]
            return
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.key}.npy") as fh:
            read_npy_header(fh)
            done = 0
            while done < total:
                n = min(rows, total - done)
                try:
                    buf = fh.read(n * row_bytes)
                except (OSError, EOFError, zipfile.BadZipFile) as exc:
                    raise DataError(f"{self.path}:{self.key} is corrupt near row {done} ({exc}).") from exc
                if len(buf) != n * row_bytes:
                    raise DataError(
                        f"{self.path}:{self.key} ends after {done + len(buf) // max(row_bytes, 1)} of its "
                        f"{len(self)} rows: the file is truncated. Write it again."
                    )
                yield np.frombuffer(buf, dtype=self.dtype).reshape((n, *self.shape[1:]))
                done += n


def open_samples(location: str | Path, key: str | None = None) -> NpzRows:
    """The video array of a samples dir / ``.npz``: ``key``, else ``videos``, else ``arr_0`` (ADM images)."""
    path = Path(location)
    if path.is_dir():
        path = path / "samples.npz"
    if not path.is_file():
        raise DataError(f"samples file {path} does not exist; write it with `walt-bench sample --out DIR`.")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path} is not an .npz archive; expected np.savez output with 'videos' uint8 (N, T, H, W, 3) "
            "(`walt-bench sample --out DIR`) or ADM's 'arr_0' uint8 (N, H, W, 3)."
        )
    try:
        with zipfile.ZipFile(path) as zf:
            keys = [n.removesuffix(".npy") for n in zf.namelist()]
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read samples file {path}: {exc}") from exc
    for candidate in [key] if key else ["videos", "arr_0"]:
        if candidate in keys:
            rows = NpzRows(path, candidate)
            if (
                rows.dtype != np.uint8
                or len(rows.shape) not in (4, 5)
                or rows.shape[-1] != 3
                or 0 in rows.shape[1:]
            ):
                raise DataError(
                    f"{path}:{candidate} is {rows.dtype} {rows.shape}; expected uint8 (N, T, H, W, 3) videos or "
                    "(N, H, W, 3) images."
                )
            return rows
    raise DataError(f"{path} holds {keys}; expected 'videos' (N, T, H, W, 3) uint8 or ADM's 'arr_0'.")


def has_array(location: str | Path, key: str) -> bool:
    path = Path(location)
    path = path / "samples.npz" if path.is_dir() else path
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return f"{key}.npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile):  # unreadable: the reader that opens it next reports the error
        return False


def to_pixels(block: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) or (B, H, W, 3) -> float (B, T, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.array(block, copy=True))  # blocks read from a zip are read-only
    if x.ndim == 4:
        x = x.unsqueeze(1)
    return x.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
