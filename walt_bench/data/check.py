"""``walt-bench data check``: read every item of a dataset through the real readers.

:func:`check_dataset` builds each split of the spec's dataset (UCF-101: train and test of the fold;
Kinetics-600: train, val, test; ImageNet: train, val; plus ``data.image_root`` when set), reads every item
with ``clip_sampling='start'`` and no skipping, and returns a report: item counts per split and class, the clip
shape, files listed but missing on disk, and every unreadable file by path. A split that cannot be built at
all (e.g. no ``val/`` folder) is reported as a note, except the spec's own split, whose error propagates.
"""

from __future__ import annotations

from collections import Counter

from torch.utils.data import DataLoader, Dataset

from walt_bench.data.config import DataConfig
from walt_bench.data.video_io import UnreadableFileError
from walt_bench.errors import DataError

DEFAULT_SPLITS = {
    "ucf101": ("train", "test"),
    "kinetics600": ("train", "val", "test"),
    "imagenet": ("train", "val"),
}


class _Probe(Dataset):
    """Reads item i of ``dataset`` and returns what happened instead of raising."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        path, label = self.dataset.samples[i]
        try:
            item = self.dataset.read(i)
        except UnreadableFileError as err:
            return {"index": i, "label": label, "path": path, "error": err.reason, "shape": None}
        video = item["video"]
        ok_range = bool(video.min() >= -1.0 and video.max() <= 1.0)
        return {
            "index": i,
            "label": label,
            "path": path,
            "error": None if ok_range else "values outside [-1, 1]",
            "shape": tuple(video.shape),
        }


def _identity(x):
    return x


def _check_split(dataset, num_workers: int, desc: str) -> dict:
    from tqdm import tqdm

    loader = DataLoader(_Probe(dataset), batch_size=None, num_workers=num_workers, collate_fn=_identity)
    counts: Counter = Counter()
    shapes: Counter = Counter()
    unreadable = []
    for result in tqdm(loader, total=len(dataset), desc=desc, unit="item", leave=False):
        if result["error"]:
            unreadable.append({"path": result["path"], "error": result["error"]})
            continue
        counts[result["label"]] += 1
        shapes[result["shape"]] += 1
    names = dataset.classes
    return {
        "items": len(dataset),
        "readable": sum(counts.values()),
        "per_class": {names[i] if 0 <= i < len(names) else str(i): n for i, n in sorted(counts.items())},
        "clip_shapes": [list(s) for s, _ in shapes.most_common()],
        "missing": [path for path, _ in getattr(dataset, "missing", [])],
        "unreadable": unreadable,
    }


def check_dataset(cfg: DataConfig, splits: list[str] | None = None) -> dict:
    """Read every item of every split; see the module docstring for the report's content."""
    from walt_bench.data.imagenet import ImageFolder
    from walt_bench.data.loader import build_dataset, image_folder

    base = cfg.model_copy(update={"clip_sampling": "start", "skip_unreadable": False, "image_ratio": 0.0})
    primary = set(cfg.split.split("+"))  # ucf101's train+test is checked as train and test
    defaults = DEFAULT_SPLITS[cfg.dataset]
    wanted = list(splits or dict.fromkeys(([] if primary <= set(defaults) else [cfg.split]) + list(defaults)))
    report: dict = {"dataset": cfg.dataset, "root": cfg.root, "classes": [], "splits": {}, "notes": []}
    for split in wanted:
        try:
            dataset = build_dataset(base, split)
        except DataError as err:
            if split == cfg.split or split in primary:
                raise
            report["notes"].append(f"split {split!r} not checked: {err}")
            continue
        report["classes"] = report["classes"] or list(dataset.classes)
        report["splits"][split] = _check_split(dataset, cfg.num_workers, f"{cfg.dataset} {split}")
    if cfg.image_root:
        images = ImageFolder(
            image_folder(cfg.image_root),
            num_frames=1,
            height=cfg.height,
            width=cfg.width,
            skip_unreadable=False,
        )
        report["splits"]["images"] = _check_split(images, cfg.num_workers, "images")
    report["unreadable"] = sum(len(s["unreadable"]) for s in report["splits"].values())
    report["missing"] = sum(len(s["missing"]) for s in report["splits"].values())
    return report


def format_report(report: dict, max_classes: int = 120) -> str:
    """A short human summary of :func:`check_dataset`'s report."""
    lines = [f"{report['dataset']} at {report['root']}"]
    splits = report["splits"]
    for name, s in splits.items():
        shapes = ", ".join("x".join(map(str, shape)) for shape in s["clip_shapes"]) or "-"
        lines.append(
            f"  {name}: {s['items']} items, {s['readable']} readable, {len(s['unreadable'])} unreadable, "
            f"{len(s['missing'])} missing; clip shape (T, C, H, W) {shapes}"
        )
    seen = {c for s in splits.values() for c in s["per_class"]}
    classes = [c for c in report["classes"] if c in seen] + sorted(seen - set(report["classes"]))
    if classes and len(classes) <= max_classes:
        width = max(len(c) for c in classes)
        lines.append("  " + "class".ljust(width) + "".join(f"{n:>10}" for n in splits))
        for c in classes:
            lines.append(
                "  " + c.ljust(width) + "".join(f"{s['per_class'].get(c, 0):>10}" for s in splits.values())
            )
    elif classes:
        for name, s in splits.items():
            n = sorted(s["per_class"].values())
            lines.append(
                f"  {name}: {len(n)} classes, items per class min {n[0]} median {n[len(n) // 2]} max {n[-1]}"
            )
    for name, s in splits.items():
        for path in s["missing"][:20]:
            lines.append(f"  missing ({name}): {path}")
        if len(s["missing"]) > 20:
            lines.append(f"  ... and {len(s['missing']) - 20} more missing in {name} (all in --json)")
        for bad in s["unreadable"]:
            lines.append(f"  UNREADABLE ({name}): {bad['path']}: {bad['error']}")
    lines += [f"  note: {note}" for note in report["notes"]]
    verdict = "OK" if report["unreadable"] == 0 else f"FAILED: {report['unreadable']} unreadable file(s)"
    lines.append(verdict)
    return "\n".join(lines)
