"""The dataset base class every reader shares: item keys, per-item randomness and skipping.

An item is requested with an :class:`ItemKey` ``(index, seed, epoch)`` (the loader's samplers yield them) or a
plain ``int`` (= ``ItemKey(index, 0, 0)``). All randomness of an item (clip start, image-stack draws) comes
from ``numpy.random.default_rng([seed, epoch, index])``, so an item is the same whichever worker or rank
reads it.

Unreadable files (corrupt, truncated, zero-length, wrong format): with ``skip_unreadable`` the item is
replaced by the next index that reads (``index + 1, index + 2, ...``) so that training batches stay full, the
file is named in a warning (once per process), and the shared counter ``num_skipped`` (a
``multiprocessing.Value``, so DataLoader workers add to the parent's count) goes up by one. When more than
``max_unreadable_fraction`` of the items requested (counted over at least one epoch's worth,
``max(requests, len(dataset))``) were unreadable, reading stops with a :class:`DataError`: the data is broken
and training on the rest would be silently biased. Without ``skip_unreadable``,
:class:`~walt_bench.data.video_io.UnreadableFileError` propagates with the path. Readers that must not
substitute (``tokenizer encode``, ``data check``) call :meth:`ClipDataset.read`, which never skips.
"""

from __future__ import annotations

import abc
import contextlib
import multiprocessing
import warnings
from collections import Counter
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from walt_bench.data.video_io import UnreadableFileError, read_video_frames, resize_center_crop
from walt_bench.errors import DataError

MAX_CONSECUTIVE_SKIPS = 64


class ItemKey(NamedTuple):
    """What a sampler asks a dataset for: item ``index``, drawn for run ``seed`` in ``epoch``."""

    index: int
    seed: int = 0
    epoch: int = 0


def item_rng(key: ItemKey) -> np.random.Generator:
    """The generator behind every random choice of one item (worker- and rank-independent)."""
    return np.random.default_rng([int(key.seed), int(key.epoch), int(key.index), 0x57A17])


class ClipDataset(Dataset, abc.ABC):
    """A list of ``(path, label)`` samples; subclasses implement :meth:`load` -> ``(T, 3, H, W)`` in [-1, 1].

    Items: ``{"video": FloatTensor (T, 3, H, W), "label": int, "is_image": bool, "index": int}`` where ``index``
    is the index actually read (it differs from the request only when an unreadable file was skipped).
    """

    is_image: bool = False

    def __init__(
        self,
        samples: list[tuple[str, int]],
        classes: list[str],
        *,
        skip_unreadable: bool = True,
        max_unreadable_fraction: float = 0.1,
    ):
        self.samples = samples
        self.classes = classes
        self.skip_unreadable = skip_unreadable
        self.max_unreadable_fraction = max_unreadable_fraction
        # spawn-context Values work with fork, spawn and forkserver DataLoader workers alike
        ctx = multiprocessing.get_context("spawn")
        self._num_skipped = ctx.Value("q", 0)
        self._requests = ctx.Array("q", 2)  # [items requested, requested items that were unreadable]
        self._warned: set[str] = set()

    # -- to implement -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def load(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        """Decode sample ``index`` -> float ``(T, 3, H, W)`` in [-1, 1]; raise UnreadableFileError."""

    # -- shared ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_skipped(self) -> int:
        """Unreadable files skipped so far, summed over this process and its DataLoader workers."""
        return int(self._num_skipped.value)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name (classes without samples included, as 0)."""
        counts = Counter(self.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def read(self, key: ItemKey | int) -> dict:
        """Read exactly one item, raising UnreadableFileError (no skipping): used by ``data check``."""
        key = key if isinstance(key, ItemKey) else ItemKey(int(key))
        video = self.load(key.index, item_rng(key))
        return {
            "video": video,
            "label": self.samples[key.index][1],
            "is_image": self.is_image,
            "index": key.index,
        }

    def __getitem__(self, key: ItemKey | int) -> dict:
        key = key if isinstance(key, ItemKey) else ItemKey(int(key))
        if not 0 <= key.index < len(self):
            raise IndexError(f"index {key.index} out of range for {len(self)} items")
        tries = min(len(self), MAX_CONSECUTIVE_SKIPS)
        for attempt in range(tries):
            index = (key.index + attempt) % len(self)
            try:
                item = self.read(key._replace(index=index))
                if attempt == 0:
                    self._count_request(bad=False, err=None)
                return item
            except UnreadableFileError as err:
                if not self.skip_unreadable:
                    raise
                self._record_skip(err)
                if attempt == 0:
                    self._count_request(bad=True, err=err)
        raise DataError(
            f"{tries} consecutive items from index {key.index} were unreadable (last: "
            f"{self.samples[index][0]}); the dataset looks broken. Run `walt-bench data check` to list them."
        )

    def _count_request(self, *, bad: bool, err: UnreadableFileError | None) -> None:
        with self._requests.get_lock():
            self._requests[0] += 1
            self._requests[1] += int(bad)
            requested, unreadable = self._requests[0], self._requests[1]
        if bad and unreadable > self.max_unreadable_fraction * max(requested, len(self)):
            raise DataError(
                f"{unreadable} of the {requested} items requested so far from this {type(self).__name__} "
                f"({len(self)} items) were unreadable, more than data.max_unreadable_fraction="
                f"{self.max_unreadable_fraction} of an epoch (last: {err.path}: {err.reason}). The data looks "
                "broken: run `walt-bench data check --spec FILE` to list every unreadable file, then repair or "
                "remove them (or raise data.max_unreadable_fraction)."
            )

    @property
    def num_unreadable_requests(self) -> int:
        """Requested items (not substitutes) that were unreadable, summed over DataLoader workers."""
        return int(self._requests[1])

    def _record_skip(self, err: UnreadableFileError) -> None:
        with self._num_skipped.get_lock():
            self._num_skipped.value += 1
        if err.path not in self._warned:
            self._warned.add(err.path)
            warnings.warn(f"skipping unreadable file {err.path}: {err.reason}", RuntimeWarning, stacklevel=3)

    def __getstate__(self):
        # Plain pickling (e.g. deepcopy) cannot carry the shared counter; DataLoader workers inherit it.
        state = self.__dict__.copy()
        if not _spawning():
            state["_num_skipped"] = _Plain(self.num_skipped)
            state["_requests"] = _PlainArray(list(self._requests))
        return state


class VideoClipDataset(ClipDataset):
    """A reader of video files (UCF-101, Kinetics-600): clips of ``num_frames`` at ``frame_stride``, resized
    and centre-cropped to ``height x width``. Subclasses set those attributes and ``missing`` (listed files
    that are absent)."""

    num_frames: int
    frame_stride: int
    clip_sampling: str
    height: int
    width: int
    missing: list

    @property
    def num_missing(self) -> int:
        return len(self.missing)

    def load(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        frames = read_video_frames(
            self.samples[index][0], self.num_frames, self.frame_stride, self.clip_sampling, rng
        )
        return resize_center_crop(frames, self.height, self.width)


class _Plain:
    """A stand-in for ``multiprocessing.Value`` in a plain pickled copy."""

    def __init__(self, value: int):
        self.value = value

    def get_lock(self):
        return contextlib.nullcontext()


class _PlainArray(list):
    """A stand-in for ``multiprocessing.Array`` in a plain pickled copy."""

    def get_lock(self):
        return contextlib.nullcontext()


def _spawning() -> bool:
    from multiprocessing import context

    return context.get_spawning_popen() is not None
