"""Joint image-video items (Sec. 4.1): videos and stacks of independent images in one batch.

The causal tokenizer encodes the first frame on its own, so images live in the same latent space as videos,
and a batch may mix ``(T, 3, H, W)`` video clips with ``(T, 3, H, W)`` stacks of T independent images
(``is_image=True``; the denoiser's spatiotemporal layers pass those through with an identity mask).

Keys: an :class:`~walt_bench.data.base.ItemKey` reads a video; ``("image", ItemKey)`` reads an image stack.
Image labels: an image class whose folder name equals a video class name (case-insensitive) gets that class's
label; any other image class gets the null label ``null_label`` (= ``data.num_classes``, the label the
denoiser reserves for classifier-free guidance), so image classes never collide with unrelated video classes.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from walt_bench.data.base import ClipDataset, ItemKey
from walt_bench.data.imagenet import ImageFolder


class JointDataset(Dataset):
    """``videos[key]`` for video keys, a relabelled ``images`` stack for ``("image", key)`` keys."""

    def __init__(self, videos: ClipDataset, images: ImageFolder, *, null_label: int):
        self.videos, self.images, self.null_label = videos, images, null_label
        by_name = {name.lower(): i for i, name in enumerate(videos.classes)}
        self.image_label_map = [by_name.get(name.lower(), null_label) for name in images.classes]

    @property
    def classes(self) -> list[str]:
        return self.videos.classes

    @property
    def samples(self):
        return self.videos.samples

    @property
    def num_skipped(self) -> int:
        return self.videos.num_skipped + self.images.num_skipped

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2 and key[0] == "image":
            item = self.images[ItemKey(*key[1])]
            return {**item, "label": self.image_label_map[item["label"]]}
        return self.videos[key]
