"""Kinetics-600 (Carreira et al. 2018) from its annotation CSV, read with decord.

The CSV has a header ``label,youtube_id,time_start,time_end,split``; clips live at::

    <root>/<split>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4

(``<label>`` may also be written with underscores for spaces, as several download scripts do). Many
YouTube videos are gone, so clips missing on disk are counted (``num_missing``), reported with one warning
and left out, never fatal. The label index is the sorted list of unique non-empty labels of the whole
CSV, so it does not depend on the split or on which clips were downloaded; an empty label reads as -1.
Clip sampling, resize and crop are those of the UCF-101 reader.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from walt_bench.data.base import VideoClipDataset
from walt_bench.errors import DataError

COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
SPLIT_ALIASES = {"val": ("val", "validate", "valid", "validation"), "train": ("train",), "test": ("test",)}


def read_annotations(path: Path) -> list[dict]:
    """The annotation CSV -> rows with keys :data:`COLUMNS` (times as ints)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return _parse_annotations(path, csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{path} is not a UTF-8 CSV ({exc}); expected the Kinetics-600 annotation file with the header "
            f"{','.join(COLUMNS)}"
        ) from exc


def _parse_annotations(path: Path, reader: csv.DictReader) -> list[dict]:
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            f"{path}: header {reader.fieldnames} lacks column(s) {missing}; expected {','.join(COLUMNS)}"
        )
    rows = []
    for n, row in enumerate(reader, 2):
        short = [c for c in COLUMNS if row.get(c) is None]
        if short:
            raise DataError(
                f"{path}:{n}: the row has no value for column(s) {short} (too few fields); expected "
                f"{','.join(COLUMNS)} on every line"
            )
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}:{n}: time_start/time_end must be numbers, got {row}") from exc
        rows.append({**row, "time_start": start, "time_end": end, "label": (row["label"] or "").strip()})
    return rows


def clip_filename(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}.mp4"


class Kinetics600(VideoClipDataset):
    """Kinetics-600 clips -> items ``{"video": (num_frames, 3, height, width) in [-1, 1], "label", ...}``."""

    def __init__(
        self,
        root: str | Path,
        annotations: str | Path | None,
        split: str = "train",
        *,
        num_frames: int = 17,
        frame_stride: int = 1,
        height: int = 128,
        width: int = 128,
        clip_sampling: str = "random",
        skip_unreadable: bool = True,
        max_unreadable_fraction: float = 0.1,
    ):
        root = Path(root)
        if not root.is_dir():
            raise DataError(
                f"data.root={str(root)!r} does not exist; expected the Kinetics-600 folder holding <split>/<label>/*.mp4"
            )
        csv_path = self._find_annotations(root, annotations)
        if split not in SPLIT_ALIASES:
            raise DataError(
                f"Kinetics-600 split {split!r} is unknown; expected one of {', '.join(SPLIT_ALIASES)}"
            )
        rows = read_annotations(csv_path)
        classes = sorted({r["label"] for r in rows if r["label"]})
        index = {name: i for i, name in enumerate(classes)}
        chosen = [r for r in rows if r["split"].strip().lower() in SPLIT_ALIASES[split]]
        if not chosen:
            found = sorted({r["split"] for r in rows})
            raise DataError(f"{csv_path}: no row has split {split!r} (found splits {found})")
        samples, self.missing = [], []
        for row in chosen:
            path = self._locate(root, split, row)
            label = index.get(row["label"], -1)
            if path is None:
                dir_split = row["split"].strip() or split
                expected = (
                    root
                    / dir_split
                    / row["label"]
                    / clip_filename(row["youtube_id"], row["time_start"], row["time_end"])
                )
                self.missing.append((str(expected), label))
            else:
                samples.append((str(path), label))
        if self.missing:
            warnings.warn(
                f"Kinetics-600 {split}: {len(self.missing)} of {len(chosen)} annotated clips are missing on disk "
                f"(e.g. {self.missing[0][0]}); they are left out",
                RuntimeWarning,
                stacklevel=2,
            )
        if not samples:
            raise DataError(
                f"Kinetics-600 {split} under {root}: none of the {len(chosen)} annotated clips exists"
            )
        super().__init__(
            samples, classes, skip_unreadable=skip_unreadable, max_unreadable_fraction=max_unreadable_fraction
        )
        self.root, self.split, self.annotations = root, split, csv_path
        self.num_frames, self.frame_stride = num_frames, frame_stride
        self.height, self.width, self.clip_sampling = height, width, clip_sampling

    @staticmethod
    def _find_annotations(root: Path, annotations: str | Path | None) -> Path:
        if annotations is None:
            raise DataError(
                "data.annotations is not set; Kinetics-600 needs its CSV (label,youtube_id,time_start,time_end,split)"
            )
        path = Path(annotations)
        for candidate in (path, root / path):
            if candidate.is_file():
                return candidate
        raise DataError(
            f"data.annotations={str(annotations)!r} not found (looked at {path} and {root / path})"
        )

    @staticmethod
    def _locate(root: Path, split: str, row: dict) -> Path | None:
        name = clip_filename(row["youtube_id"], row["time_start"], row["time_end"])
        for split_dir in dict.fromkeys((row["split"].strip(), split)):
            for label_dir in dict.fromkeys((row["label"], row["label"].replace(" ", "_"))):
                path = root / split_dir / label_dir / name
                if path.is_file():
                    return path
        return None
