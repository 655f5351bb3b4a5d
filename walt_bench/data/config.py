"""Spec section ``data``: which dataset, which split, and the clip geometry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from walt_bench.config import NonNegativeInt, PositiveInt, Probability, Section


class DataConfig(Section):
    dataset: Literal["ucf101", "kinetics600", "imagenet"] = Field(
        "ucf101",
        description="Reader to use. The embedded synthetic dataset is written in UCF-101's layout, so it is read "
        "with 'ucf101'.",
    )
    root: str = Field(
        "data/synthetic",
        description="Dataset root. ucf101: the folder holding UCF-101/ and ucfTrainTestlist/. kinetics600: the "
        "folder holding <split>/<label>/<id>_<start:06d>_<end:06d>.mp4. imagenet: the folder holding train/<wnid>/ "
        "and val/<wnid>/ (class-folder layout for val too).",
    )
    annotations: str | None = Field(
        None,
        description="kinetics600 only: annotation CSV (label,youtube_id,time_start,time_end,split). A relative "
        "path that does not exist from the working directory is looked up under `root`.",
    )
    split: str = Field(
        "train",
        description="ucf101: train|test|train+test; kinetics600: train|val|test; imagenet: train|val.",
    )
    fold: int = Field(1, ge=1, le=3, description="UCF-101 split list number (trainlist0{fold}.txt).")
    num_frames: PositiveInt = Field(17, description="Frames per clip, 1+T (Table 8: 17). 1 for images.")
    frame_stride: PositiveInt = Field(1, description="Step between sampled frames (paper is silent; 1).")
    clip_sampling: Literal["random", "center", "start"] = Field(
        "random",
        description="Where a clip starts inside its video. 'random': uniform over valid starts, drawn from a "
        "generator seeded by (seed, epoch, index), so it is reproducible and independent of workers and ranks "
        "(paper is silent; random temporal crops are the common choice for UCF-101/K600 training). "
        "'center' and 'start' are fixed (evaluation). Videos shorter than the clip span repeat their last frame.",
    )
    height: PositiveInt = Field(128, description="Clip height after resize + centre crop (Table 8: 128).")
    width: PositiveInt = Field(128, description="Clip width after resize + centre crop (Table 8: 128).")
    num_classes: NonNegativeInt = Field(
        101, description="Class count for class conditioning (UCF-101: 101). 0 = unconditional."
    )
    image_root: str | None = Field(
        None,
        description="Joint image-video training (Sec. 4.1): an image folder (<image_root>/<class>/*, or an "
        "ImageNet root whose train/ holds the class folders) mixed into video batches as stacks of num_frames "
        "independent images of one class. An image class named like a video class gets that label; any other "
        "gets the null label num_classes. Ignored for dataset=imagenet.",
    )
    image_ratio: Probability = Field(
        0.0,
        description="Joint training: fraction of batch items that are image stacks; each batch holds "
        "round(image_ratio * batch_size) of them (paper is silent; a fixed count keeps batches uniform).",
    )
    num_workers: NonNegativeInt = Field(2, description="DataLoader worker processes.")
    skip_unreadable: bool = Field(
        True,
        description="Training replaces an unreadable file by the next readable item, with a warning and a "
        "counter (dataset.num_skipped), instead of crashing. False: raise DataError naming the file.",
    )
    max_unreadable_fraction: Probability = Field(
        0.1,
        description="Reading stops with an error naming the last bad file when more than this fraction of an "
        "epoch's items were unreadable (then the data is broken, and skipping would silently bias training). "
        "Applies to training, `tokenizer encode` and reference statistics. Paper is silent; 0.1: far above the "
        "few damaged files of a real UCF-101/Kinetics download, far below a broken copy.",
    )
