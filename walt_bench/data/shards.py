"""Row shards on disk: a dataset-sized array written one row range at a time, by any number of processes, and
read back in order with memory bounded by one shard.

Layout of a shard folder (``walt-bench sample`` writes ``samples-<identity>/shards/``)::

    shard_00000.npz   {"start": (), "stop": (), KEY: (stop - start, ...), ...}   rows [start, stop)
    shard_00001.npz   ...

:func:`plan_shards` cuts rows ``[0, num)`` into ranges of ``size``; :func:`assign` hands the unfinished ones to
ranks round-robin (a resumed job spreads what is left evenly). A shard is written under a temporary name and
renamed (:func:`save_npz_atomic`), so a file named ``shard_*.npz`` is always complete and a stopped job resumes
by skipping the shards that exist (:func:`finished`). :class:`ShardedRows` reads one key of every shard as one
array of ``num`` rows in blocks (the interface of ``walt_bench.evaluation.samples.NpzRows``).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from walt_bench.errors import DataError

_NAME = re.compile(r"^shard_(\d{5,})\.npz$")


def plan_shards(num: int, size: int) -> list[range]:
    """Rows ``[0, num)`` in consecutive ranges of ``size`` (the last may be shorter)."""
    if num < 1 or size < 1:
        raise ValueError(f"plan_shards: num ({num}) and size ({size}) must be positive")
    return [range(start, min(start + size, num)) for start in range(0, num, size)]


def assign(todo: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The shard numbers of ``todo`` that ``rank`` of ``world_size`` writes: every ``world_size``-th one."""
    return list(todo[rank::world_size])


def shard_path(folder: str | Path, k: int) -> Path:
    return Path(folder) / f"shard_{k:05d}.npz"


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` (uncompressed) to ``path`` through a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def write_shard(folder: str | Path, k: int, rows: range, **arrays: np.ndarray) -> Path:
    """Shard ``k`` holding rows ``rows`` of every array in ``arrays`` (each with ``len(rows)`` rows)."""
    for key, arr in arrays.items():
        if len(arr) != len(rows):
            raise ValueError(f"shard {k}: {key} has {len(arr)} rows for the range {rows.start}..{rows.stop}")
    return save_npz_atomic(
        shard_path(folder, k), start=np.int64(rows.start), stop=np.int64(rows.stop), **arrays
    )


def shard_range(path: str | Path) -> range:
    """The row range a shard file records."""
    with np.load(path) as data:
        return range(int(data["start"]), int(data["stop"]))


def finished(folder: str | Path, plan: Sequence[range]) -> set[int]:
    """Shard numbers of ``plan`` whose file exists and records the planned range (a resume skips them)."""
    done = set()
    for k, rows in enumerate(plan):
        path = shard_path(folder, k)
        if path.is_file():
            try:
                ok = shard_range(path) == rows
            except (OSError, ValueError, KeyError, EOFError):  # unreadable: written again
                ok = False
            if ok:
                done.add(k)
    return done


def shard_files(folder: str | Path) -> list[Path]:
    """``shard_*.npz`` files of ``folder`` in shard order."""
    folder = Path(folder)
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    return [p for _, p in found]


def _open_member(zf: zipfile.ZipFile, key: str):
    """(file handle positioned at the data, shape, fortran order, dtype) of member ``key`` of an ``.npz``."""
    fh = zf.open(f"{key}.npy")
    version = np.lib.format.read_magic(fh)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(fh)
    return fh, shape, fortran, dtype


def member_info(path: str | Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``key`` of an ``.npz``, from its header alone."""
    with zipfile.ZipFile(path) as zf:
        fh, shape, _, dtype = _open_member(zf, key)
        fh.close()
    return shape, dtype


def read_member(path: str | Path, key: str) -> np.ndarray:
    """Array ``key`` of an uncompressed ``.npz`` in one read (read-only; faster than ``np.load(path)[key]``,
    which copies stored members in 256 KiB pieces)."""
    with zipfile.ZipFile(path) as zf:
        fh, shape, fortran, dtype = _open_member(zf, key)
        with fh:
            data = fh.read()
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


class ShardedRows:
    """Array ``key`` of every shard in ``folder``, read as one array of rows ``[0, N)`` in blocks.

    The shards must tile ``[0, N)`` (checked on opening, from each file's ``start``/``stop``); ``shape`` and
    ``dtype`` describe the whole array. Memory: one shard plus one block.
    """

    def __init__(self, folder: str | Path, key: str):
        self.folder, self.key = Path(folder), key
        self.files = shard_files(self.folder) if self.folder.is_dir() else []
        if not self.files:
            raise DataError(f"no shard_*.npz files in {self.folder}; write them with `walt-bench sample`.")
        expected, row_shape, dtype = 0, None, None
        for path in self.files:
            try:
                rows = shard_range(path)
                shape, dt = member_info(path, key)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(
                    f"shard {path} is unreadable or lacks {key!r} ({exc}); sample it again."
                ) from exc
            if rows.start != expected or len(rows) != shape[0]:
                raise DataError(
                    f"shards in {self.folder} do not tile the rows: {path.name} holds rows "
                    f"{rows.start}..{rows.stop} ({shape[0]} rows) where row {expected} was expected next. "
                    "Finish the generation (rerun the same command) or sample again with --overwrite."
                )
            if row_shape is None:
                row_shape, dtype = tuple(shape[1:]), dt
            elif tuple(shape[1:]) != row_shape or dt != dtype:
                raise DataError(
                    f"shard {path} holds {dt} {shape[1:]} rows; earlier shards {dtype} {row_shape}"
                )
            expected = rows.stop
        self.shape = (expected, *row_shape)
        self.dtype = dtype

    def __len__(self) -> int:
        return int(self.shape[0])

    def iter_blocks(self, rows: int, limit: int | None = None) -> Iterator[np.ndarray]:
        """Blocks of ``rows`` rows (the last may be shorter) of the first ``limit`` rows (default all)."""
        total = len(self) if limit is None else min(limit, len(self))
        pending: list[np.ndarray] = []
        held, done = 0, 0
        for path in self.files:
            if done + held >= total:
                break
            arr = read_member(path, self.key)[: total - done - held]
            pending.append(arr)
            held += len(arr)
            while held >= rows:
                block = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield block[:rows]
                pending, held, done = [block[rows:]], held - rows, done + rows
        if held:
            yield np.concatenate(pending)

    def read(self, limit: int | None = None) -> np.ndarray:
        """The first ``limit`` rows (default all) as one array: for small counts only."""
        blocks = list(self.iter_blocks(max(1, len(self)), limit))
        return blocks[0] if blocks else np.empty((0, *self.shape[1:]), self.dtype)
