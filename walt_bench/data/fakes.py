"""Tiny fake dataset trees in the real layouts, for tests (ours and other parts').

Video frame ``t`` of every fake video is a flat grey of level :func:`frame_level` ``(t)`` (with a coloured
corner patch per class), so a test can read which source frames a clip came from. Each builder returns a small
record of what it wrote, including the deliberately broken files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def frame_level(t: int) -> int:
    """Grey level of source frame ``t`` for t < 24; 10 levels apart, as mpeg4 + yuv420p move a flat
    grey by up to ~4."""
    return 20 + 10 * t


def level_to_frame(level: float) -> int:
    return int(round((level - 20) / 10))


def fake_frames(num_frames: int, height: int, width: int, label: int = 0) -> np.ndarray:
    """uint8 ``(T, H, W, 3)``: frame t flat at ``frame_level(t % 24)``, with a label-coloured top-left patch."""
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frames[t] = frame_level(t % 24)
    frames[:, :4, :4] = (np.array([37, 91, 173]) * (label + 1)) % 256
    return frames


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file to ``keep`` of its bytes (a download that stopped)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])


def make_ucf101_tree(
    root: str | Path,
    classes: tuple[str, ...] = ("ApplyEyeMakeup", "HandstandPushups", "YoYo"),
    groups: int = 3,
    frames: int = 24,
    size: tuple[int, int] = (30, 40),
    broken: bool = True,
) -> dict:
    """UCF-101 layout with CRLF lists; fold k tests group k. ``HandstandPushups`` files are spelled
    ``HandStandPushups`` as in the published data. With ``broken``, the first train video of the last class
    is truncated. Returns ``{"root", "classes", "train": {fold: n}, "test": {fold: n}, "broken": [paths]}``."""
    from walt_bench.data.video_io import write_video

    root = Path(root)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    train = {f: [] for f in (1, 2, 3)}
    test = {f: [] for f in (1, 2, 3)}
    for c, name in enumerate(classes):
        spelled = "HandStandPushups" if name == "HandstandPushups" else name
        for g in range(1, groups + 1):
            rel = f"{name}/v_{spelled}_g{g:02d}_c01.avi"
            write_video(root / "UCF-101" / rel, fake_frames(frames, *size, label=c), fps=25)
            for fold in (1, 2, 3):
                (test[fold].append(rel) if g == fold else train[fold].append(f"{rel} {c + 1}"))
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\r\n" for i, n in enumerate(classes)))
    for fold in (1, 2, 3):
        (lists / f"trainlist0{fold}.txt").write_text("".join(x + "\r\n" for x in train[fold]))
        (lists / f"testlist0{fold}.txt").write_text("".join(x + "\r\n" for x in test[fold]))
    bad = []
    if broken:
        rel = train[1][-1].split()[0]
        truncate(root / "UCF-101" / rel)
        bad.append(str(root / "UCF-101" / rel))
    return {
        "root": root,
        "classes": list(classes),
        "train": {f: len(v) for f, v in train.items()},
        "test": {f: len(v) for f, v in test.items()},
        "broken": bad,
    }


def make_kinetics_tree(
    root: str | Path,
    labels: tuple[str, ...] = ("zumba", "abseiling", "air drumming"),
    per_label: int = 2,
    missing: int = 2,
    frames: int = 20,
    size: tuple[int, int] = (32, 48),
) -> dict:
    """Kinetics layout (h264 mp4) + annotations.csv with train and val rows; the last ``missing`` train rows
    have no file on disk. Returns ``{"root", "csv", "labels", "train", "val", "missing": [paths]}``."""
    from walt_bench.data.video_io import write_video

    root = Path(root)
    rows, missing_paths, counts = [], [], {"train": 0, "val": 0}
    ordered = sorted(labels)
    for split in ("train", "val"):
        for label in labels:
            for k in range(per_label):
                vid, start = f"{label[:3].replace(' ', 'x')}{split}{k:02d}Xy", 10 * k
                rows.append((label, vid, start, start + 10, split))
                path = root / split / label / f"{vid}_{start:06d}_{start + 10:06d}.mp4"
                write_video(
                    path, fake_frames(frames, *size, ordered.index(label)), codec="h264", codec_tag=None
                )
                counts[split] += 1
    for k in range(missing):
        vid = f"gone{k:02d}Abc"
        rows.append((labels[0], vid, 0, 10, "train"))
        missing_paths.append(str(root / "train" / labels[0] / f"{vid}_000000_000010.mp4"))
    csv = root / "annotations.csv"
    lines = ["label,youtube_id,time_start,time_end,split"]
    lines += [f'"{r[0]}",{r[1]},{r[2]},{r[3]},{r[4]}' for r in rows]
    csv.write_text("\n".join(lines) + "\n")
    return {"root": root, "csv": csv, "labels": ordered, **counts, "missing": missing_paths}


def make_image_tree(
    root: str | Path,
    classes: tuple[str, ...] = ("n01440764", "n01443537"),
    per_class: int = 3,
    size: tuple[int, int] = (48, 64),
    splits: tuple[str, ...] = ("train", "val"),
    broken: bool = True,
) -> dict:
    """ImageNet layout ``<root>/<split>/<wnid>/*.JPEG`` (image i of class c is flat grey ``30 + 40c + 5i``);
    with ``broken``, a text file named ``.JPEG`` sits in the first train class and a ``notes.txt`` is ignored.
    Returns ``{"root", "classes", "counts": {split: n readable}, "broken": [paths]}``."""
    from PIL import Image

    root = Path(root)
    counts, bad = {}, []
    for split in splits:
        for c, wnid in enumerate(classes):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                level = 30 + 40 * c + 5 * i
                Image.new("RGB", (size[1], size[0]), (level, level, level)).save(
                    folder / f"{wnid}_{i}.JPEG", quality=95
                )
        counts[split] = len(classes) * per_class
    if broken and "train" in splits:
        path = root / "train" / classes[0] / "zz_not_an_image.JPEG"
        path.write_text("this is not a JPEG\n")
        (root / "train" / classes[0] / "notes.txt").write_text("ignored: not an image extension\n")
        bad.append(str(path))
    return {"root": root, "classes": list(classes), "counts": counts, "broken": bad}
