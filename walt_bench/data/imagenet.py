"""Images as 1-frame videos: ImageNet and any class-folder image tree, read with PIL.

Layout::

    <root>/train/<wnid>/*.JPEG
    <root>/val/<wnid>/*.JPEG       (class-folder layout; the flat ILSVRC val folder must first be sorted
                                    into class folders, e.g. with the common ``valprep.sh``)

Class indices are the sorted class-folder names of ``train/`` (val uses the same index). Files with an
image extension (:data:`IMAGE_EXTENSIONS`, any case) are samples; other files are ignored; a sample that PIL
cannot decode is an unreadable file (skipped and counted in training, listed by ``data check``).

Preprocessing is ADM's ``center_crop_arr`` (:func:`~walt_bench.data.video_io.adm_center_crop`) at
(height, width) = 256x256 for the paper's ImageNet setting (Table 2). An item is a 1-frame video
``(1, 3, H, W)``; with ``num_frames = T > 1`` it is a stack of T independent images of the item's class
(the first is the item's own image, the others drawn with the item's generator), the image input of joint
image-video training (Sec. 4.1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from walt_bench.data.base import ClipDataset
from walt_bench.data.video_io import load_image_frame
from walt_bench.errors import DataError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def list_class_folders(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


class ImageFolder(ClipDataset):
    """``<directory>/<class>/<image>`` -> items ``{"video": (num_frames, 3, H, W), "is_image": True, ...}``."""

    is_image = True

    def __init__(
        self,
        directory: str | Path,
        *,
        classes: list[str] | None = None,
        num_frames: int = 1,
        height: int = 256,
        width: int = 256,
        skip_unreadable: bool = True,
        max_unreadable_fraction: float = 0.1,
    ):
        directory = Path(directory)
        if not directory.is_dir():
            raise DataError(
                f"image folder {str(directory)!r} does not exist; expected <folder>/<class>/*.JPEG"
            )
        found = list_class_folders(directory)
        if not found:
            loose = [p.name for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS][:3]
            hint = (
                f" It holds loose images ({', '.join(loose)}, ...): sort them into one folder per class "
                "(for ImageNet val, e.g. with valprep.sh)."
                if loose
                else ""
            )
            raise DataError(
                f"image folder {directory} has no class folders; expected {directory}/<class>/*.JPEG.{hint}"
            )
        classes = found if classes is None else classes
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{directory}: class folders {unknown[:5]} are not classes of the training split")
        samples = []
        for label, name in enumerate(classes):
            folder = directory / name
            if folder.is_dir():
                files = sorted(
                    p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                )
                samples += [(str(p), label) for p in files]
        if not samples:
            raise DataError(
                f"{directory}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in its class folders"
            )
        super().__init__(
            samples,
            list(classes),
            skip_unreadable=skip_unreadable,
            max_unreadable_fraction=max_unreadable_fraction,
        )
        self.directory, self.num_frames, self.height, self.width = directory, num_frames, height, width
        self.by_class: list[list[int]] = [[] for _ in classes]
        for i, (_, label) in enumerate(samples):
            self.by_class[label].append(i)

    def stack_indices(self, index: int, rng: np.random.Generator) -> list[int]:
        """The item's image followed by ``num_frames - 1`` images of the same class drawn with ``rng``."""
        same = self.by_class[self.samples[index][1]]
        return [index] + [same[int(j)] for j in rng.integers(0, len(same), size=self.num_frames - 1)]

    def load(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        frames = [
            load_image_frame(self.samples[i][0], self.height, self.width)
            for i in self.stack_indices(index, rng)
        ]
        return torch.cat(frames, dim=0)  # (T, 3, H, W)


class ImageNet(ImageFolder):
    """ImageNet at ``<root>/{train,val}/<wnid>/*.JPEG`` with train's class index for every split."""

    def __init__(self, root: str | Path, split: str = "train", **kwargs):
        root = Path(root)
        if split not in ("train", "val"):
            raise DataError(f"ImageNet split {split!r} is unknown; expected train or val")
        if not (root / "train").is_dir():
            raise DataError(
                f"data.root={str(root)!r} is not an ImageNet root: expected {root / 'train'}/<wnid>/*.JPEG "
                f"and {root / 'val'}/<wnid>/*.JPEG. Set data.root to the folder holding train/ and val/."
            )
        super().__init__(root / split, classes=list_class_folders(root / "train"), **kwargs)
        self.root, self.split = root, split
