"""UCF-101 (Soomro et al. 2012) in its published layout, read with decord.

Layout (also what ``walt-bench data synth`` writes)::

    <root>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi
    <root>/ucfTrainTestlist/classInd.txt          "1 ApplyEyeMakeup"               (1-based)
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt "ApplyEyeMakeup/v_..._g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt  "ApplyEyeMakeup/v_..._g01_c01.avi"  (no label)

Labels are 0-based indices into classInd.txt. Train-list lines carry their label; test-list lines are
labelled by their folder name, matched to classInd case-insensitively (the published lists spell
``HandstandPushups`` and ``HandStandPushups`` both). Split ``train+test`` joins both lists of the fold.
Clips: ``num_frames`` frames at ``frame_stride`` (see :func:`~walt_bench.data.video_io.clip_start`), resized
so the short side covers (height, width), bilinear with antialias, and centre-cropped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from walt_bench.data.base import VideoClipDataset
from walt_bench.errors import DataError

SPLITS = ("train", "test", "train+test")


def _read_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    ]


def read_class_index(path: Path) -> list[str]:
    """classInd.txt -> class names ordered by their 1-based index."""
    entries = {}
    for n, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}:{n}: expected '<1-based index> <ClassName>', got {line!r}")
        entries[int(parts[0])] = parts[1]
    if sorted(entries) != list(range(1, len(entries) + 1)):
        raise DataError(
            f"{path}: class indices must be 1..{len(entries)} without gaps, got {sorted(entries)[:10]}..."
        )
    return [entries[i] for i in range(1, len(entries) + 1)]


def read_split_list(path: Path, classes: list[str]) -> list[tuple[str, int]]:
    """A train/test list -> ``(relative path, 0-based label)`` pairs."""
    by_name = {name.lower(): i for i, name in enumerate(classes)}
    items = []
    for n, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        rel = parts[0]
        if len(parts) >= 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise DataError(f"{path}:{n}: label {parts[1]!r} is not in 1..{len(classes)} (classInd.txt)")
            label = int(parts[1]) - 1
        else:
            folder = rel.split("/")[0].lower()
            if folder not in by_name:
                raise DataError(f"{path}:{n}: folder {rel.split('/')[0]!r} is not a class of classInd.txt")
            label = by_name[folder]
        items.append((rel, label))
    return items


class UCF101(VideoClipDataset):
    """UCF-101 clips -> items ``{"video": (num_frames, 3, height, width) in [-1, 1], "label", ...}``."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        fold: int = 1,
        num_frames: int = 17,
        frame_stride: int = 1,
        height: int = 128,
        width: int = 128,
        clip_sampling: str = "random",
        skip_unreadable: bool = True,
        max_unreadable_fraction: float = 0.1,
    ):
        root = Path(root)
        videos, lists = root / "UCF-101", root / "ucfTrainTestlist"
        if not (videos.is_dir() and (lists / "classInd.txt").is_file()):
            raise DataError(
                f"data.root={str(root)!r} is not a UCF-101 root: expected {videos}/<Class>/v_*.avi and "
                f"{lists}/classInd.txt. Set data.root to the folder holding UCF-101/ and ucfTrainTestlist/, or "
                "write the embedded synthetic dataset there with `walt-bench data synth --out DIR`."
            )
        if split not in SPLITS:
            raise DataError(f"UCF-101 split {split!r} is unknown; expected one of {', '.join(SPLITS)}")
        if fold not in (1, 2, 3):
            raise DataError(f"UCF-101 fold {fold} is unknown; expected 1, 2 or 3")
        classes = read_class_index(lists / "classInd.txt")
        entries: list[tuple[str, int]] = []
        for part in split.split("+"):
            list_file = lists / f"{part}list0{fold}.txt"
            if not list_file.is_file():
                raise DataError(f"missing split list {list_file} (split={split!r}, fold={fold})")
            entries += read_split_list(list_file, classes)
        samples, self.missing = [], []
        for rel, label in entries:
            path = videos / rel
            (samples if path.is_file() else self.missing).append((str(path), label))
        if self.missing:
            warnings.warn(
                f"UCF-101 {split} (fold {fold}): {len(self.missing)} listed videos are missing, e.g. "
                f"{self.missing[0][0]}; they are left out",
                RuntimeWarning,
                stacklevel=2,
            )
        if not samples:
            raise DataError(f"UCF-101 {split} (fold {fold}) under {root}: no listed video exists")
        super().__init__(
            samples, classes, skip_unreadable=skip_unreadable, max_unreadable_fraction=max_unreadable_fraction
        )
        self.root, self.split, self.fold = root, split, fold
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.height, self.width, self.clip_sampling = height, width, clip_sampling
