"""``build_dataset`` and ``build_loader``: deterministic, sharded, infinite, resumable batches.

Sampling (one training step = one global batch of ``batch_size * world_size`` items)::

    epoch e:   perm_e = default_rng([seed, e]).permutation(N)            same on every rank
    step j:    global = perm_e[j*G : (j+1)*G],  G = Bv * world_size      Bv = video items per rank batch
    rank r:    global[r::world_size]                                      disjoint shards
    step s:    epoch = s // steps_per_epoch, j = s % steps_per_epoch     so start_step resumes exactly

``drop_last=True`` leaves out the ``N mod G`` items of each epoch that do not fill a step; ``False`` pads the
permutation by wrapping (like ``DistributedSampler``), so every batch stays full. Items carry their
:class:`~walt_bench.data.base.ItemKey` ``(index, seed, epoch)``, which seeds all their randomness, so a batch
does not depend on ``num_workers``. Joint image-video training replaces ``round(image_ratio * batch_size)``
items of each rank's batch by image stacks whose images are drawn with ``default_rng([seed, step, rank])``.

Single process::

    loader = build_loader(spec.data, batch_size=8, seed=spec.run.seed)
    for step, batch in zip(range(100), loader): batch["video"]  # (8, 17, 3, 128, 128) in [-1, 1]

With ``torchrun``, pass ``rank`` and ``world_size``; to resume at step s, build again with ``start_step=s``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from walt_bench.data.base import ClipDataset, ItemKey
from walt_bench.data.config import DataConfig
from walt_bench.errors import DataError


def image_folder(image_root: str) -> Path:
    """``data.image_root`` -> the folder holding the class folders (``train/`` of an ImageNet root)."""
    root = Path(image_root)
    return root / "train" if (root / "train").is_dir() else root


def build_dataset(cfg: DataConfig, split: str | None = None) -> Dataset:
    """The dataset ``cfg`` names, for ``split`` (default ``cfg.split``); joint when image_root + image_ratio."""
    from walt_bench.data.imagenet import ImageFolder, ImageNet
    from walt_bench.data.joint import JointDataset
    from walt_bench.data.kinetics import Kinetics600
    from walt_bench.data.ucf101 import UCF101

    split = split or cfg.split
    clip = dict(
        num_frames=cfg.num_frames,
        frame_stride=cfg.frame_stride,
        height=cfg.height,
        width=cfg.width,
        clip_sampling=cfg.clip_sampling,
        skip_unreadable=cfg.skip_unreadable,
    )
    if cfg.dataset == "ucf101":
        dataset: ClipDataset = UCF101(cfg.root, split, fold=cfg.fold, **clip)
    elif cfg.dataset == "kinetics600":
        dataset = Kinetics600(cfg.root, cfg.annotations, split, **clip)
    else:
        dataset = ImageNet(
            cfg.root,
            split,
            num_frames=cfg.num_frames,
            height=cfg.height,
            width=cfg.width,
            skip_unreadable=cfg.skip_unreadable,
        )
    if cfg.num_classes and cfg.num_classes != len(dataset.classes):
        raise DataError(
            f"data.num_classes={cfg.num_classes} but the {cfg.dataset} data at {cfg.root} has "
            f"{len(dataset.classes)} classes; set data.num_classes={len(dataset.classes)} (or 0 for unconditional)"
        )
    if cfg.image_root and cfg.image_ratio > 0 and cfg.dataset != "imagenet":
        images = ImageFolder(
            image_folder(cfg.image_root),
            num_frames=cfg.num_frames,
            height=cfg.height,
            width=cfg.width,
            skip_unreadable=cfg.skip_unreadable,
        )
        return JointDataset(dataset, images, null_label=cfg.num_classes)
    return dataset


class ShardedBatchSampler(Sampler):
    """Infinite batches of item keys for one rank (see the module docstring for the scheme)."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        drop_last: bool = True,
        images_per_batch: int = 0,
        num_images: int = 0,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.start_step, self.drop_last = rank, world_size, start_step, drop_last
        self.images_per_batch, self.num_images = images_per_batch, num_images
        self.videos_per_batch = batch_size - images_per_batch
        global_batch = self.videos_per_batch * world_size
        if global_batch == 0:  # image stacks only: an "epoch" is as many steps as the images fill
            self.steps_per_epoch = max(1, num_images // (batch_size * world_size))
        elif drop_last:
            self.steps_per_epoch = num_items // global_batch
            if self.steps_per_epoch == 0:
                raise DataError(
                    f"the dataset has {num_items} items, fewer than one global batch of {global_batch} "
                    f"({self.videos_per_batch} video items x {world_size} ranks); use a smaller batch or more data"
                )
        else:
            self.steps_per_epoch = -(-num_items // global_batch)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The item order of ``epoch``, shared by all ranks (padded by wrapping when not drop_last)."""
        perm = np.random.default_rng([self.seed, epoch, 0xE90C]).permutation(self.num_items)
        need = self.steps_per_epoch * self.videos_per_batch * self.world_size
        return perm[:need] if len(perm) >= need else np.resize(perm, need)

    def batch_keys(self, step: int, order: np.ndarray | None = None) -> list:
        """The keys of this rank's batch at global ``step``."""
        epoch, j = divmod(step, self.steps_per_epoch)
        keys: list = []
        if self.videos_per_batch:
            order = self.epoch_order(epoch) if order is None else order
            global_batch = self.videos_per_batch * self.world_size
            mine = order[j * global_batch : (j + 1) * global_batch][self.rank :: self.world_size]
            keys += [ItemKey(int(i), self.seed, epoch) for i in mine]
        if self.images_per_batch:
            draws = np.random.default_rng([self.seed, step, self.rank, 0x1A6E]).integers(
                0, self.num_images, self.images_per_batch
            )
            keys += [("image", ItemKey(int(i), self.seed, step)) for i in draws]
        return keys

    def __iter__(self) -> Iterator[list]:
        step, order, order_epoch = self.start_step, None, -1
        while True:
            epoch = step // self.steps_per_epoch
            if self.videos_per_batch and epoch != order_epoch:
                order, order_epoch = self.epoch_order(epoch), epoch
            yield self.batch_keys(step, order)
            step += 1


def collate(items: list[dict]) -> dict:
    """Items -> ``{"video": (B, T, 3, H, W), "label": (B,) long, "is_image": (B,) bool, "index": (B,) long}``."""
    return {
        "video": torch.stack([it["video"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "is_image": torch.tensor([bool(it["is_image"]) for it in items], dtype=torch.bool),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }


def worker_init_fn(_worker_id: int) -> None:
    """One intra-op thread per loader worker: N workers beside the main process's threads would otherwise
    oversubscribe the cores (torch's own worker loop does the same; this keeps it explicit for any loader)."""
    torch.set_num_threads(1)


class InfiniteLoader:
    """An endless iterable of batches starting at ``start_step``; ``dataset.num_skipped`` counts skips."""

    def __init__(self, dataset: Dataset, sampler: ShardedBatchSampler, num_workers: int):
        self.dataset, self.batch_sampler, self.num_workers = dataset, sampler, num_workers

    @property
    def steps_per_epoch(self) -> int:
        return self.batch_sampler.steps_per_epoch

    @property
    def num_skipped(self) -> int:
        return self.dataset.num_skipped

    def __iter__(self) -> Iterator[dict]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.batch_sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            worker_init_fn=worker_init_fn if self.num_workers else None,
            prefetch_factor=2 if self.num_workers else None,
        )
        yield from loader


def build_loader(
    cfg: DataConfig,
    batch_size: int,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    start_step: int = 0,
    split: str | None = None,
    drop_last: bool = True,
    dataset: Dataset | None = None,
) -> InfiniteLoader:
    """Batches for ``rank`` of ``world_size``, deterministic for ``(seed, world_size)``, from ``start_step`` on.

    ``dataset`` reuses an already built dataset (else :func:`build_dataset` builds ``split``).
    """
    dataset = build_dataset(cfg, split) if dataset is None else dataset
    images = getattr(dataset, "images", None)
    images_per_batch = round(cfg.image_ratio * batch_size) if images is not None else 0
    sampler = ShardedBatchSampler(
        len(dataset),
        batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        start_step=start_step,
        drop_last=drop_last,
        images_per_batch=images_per_batch,
        num_images=len(images) if images is not None else 0,
    )
    return InfiniteLoader(dataset, sampler, cfg.num_workers)
