"""PNG plots of a report (matplotlib, Agg; no pyplot state): per-ablation bars of ours vs the paper
(each side normalised by its own best value), loss over training steps per variant (``metrics_jsonl``
artifact), and a grid of sample frames per variant (``samples_grid`` GIF/PNG or ``samples_npz``).

Each function returns the path it wrote, or None with nothing written when its inputs are missing;
:func:`plot_table` collects the reasons so that the index can say which plots were skipped and why.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from walt_bench.report.paper import METRICS
from walt_bench.report.results import LoadedResult, slug
from walt_bench.report.tables import TableReport

FRAMES_SHOWN = 4  # frames per clip in a sample grid
CLIPS_SHOWN = 4  # clips per variant when read from samples.npz


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # imported here: matplotlib is slow to import

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


# ---------------------------------------------------------------------------------------------
# Ours vs the paper, normalised
# ---------------------------------------------------------------------------------------------


def normalise_by_best(values: dict[str, float], better: str | None) -> dict[str, float]:
    """Each value divided by the best of its side (min when lower is better, else max): 1 = the best."""
    if not values:
        return {}
    best = min(values.values()) if better == "lower" else max(values.values())
    if best == 0:
        return {}
    return {k: v / best for k, v in values.items()}


def ablation_bars(report: TableReport, path: Path) -> Path | None:
    """Grouped bars per compared metric: ours and the paper's value per variant, each side ÷ its best."""
    t = report.table
    records = report.data.to_dict("records")
    panels = []
    for m in t.compare:
        ours = {r["variant"]: float(r[f"{m}_ours"]) for r in records if _finite(r[f"{m}_ours"])}
        paper = {r["variant"]: float(r[f"{m}_paper"]) for r in records if _finite(r[f"{m}_paper"])}
        if ours:
            panels.append((m, ours, paper))
    if not panels:
        return None
    fig = _figure(4.2 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    variants = [r["variant"] for r in records]
    x = np.arange(len(variants))
    for ax, (m, ours, paper) in zip(axes, panels):
        meta = METRICS[m]
        n_ours, n_paper = normalise_by_best(ours, meta.better), normalise_by_best(paper, meta.better)
        ax.bar(
            x - 0.2,
            [n_ours.get(v, np.nan) for v in variants],
            0.4,
            label=f"ours ({', '.join(report.scales)})",
        )
        ax.bar(x + 0.2, [n_paper.get(v, np.nan) for v in variants], 0.4, label="paper")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, variants, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{meta.label} ÷ best of its side")
        ax.set_title(f"{meta.label}{meta.arrow}", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"Table {t.id}: ours vs paper\neach side divided by its best value (1 = best)", fontsize=10)
    fig.savefig(path)
    return path


def _finite(x) -> bool:
    return x is not None and isinstance(x, int | float) and np.isfinite(x)


# ---------------------------------------------------------------------------------------------
# Loss over training steps
# ---------------------------------------------------------------------------------------------


def read_curve(path: Path, key: str = "loss") -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` in a ``metrics.jsonl`` (lines without it, or unreadable, are skipped)."""
    steps, values = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and _finite(rec.get("step")) and _finite(rec.get(key)):
            steps.append(float(rec["step"]))
            values.append(float(rec[key]))
    return steps, values


def training_curves(report: TableReport, path: Path) -> Path | None:
    """Training loss over steps, one line per variant that has a ``metrics_jsonl`` artifact."""
    curves = []
    for variant, r in report.rows.items():
        src = r.artifact("metrics_jsonl")
        if src is not None:
            steps, values = read_curve(src)
            if steps:
                curves.append((variant, steps, values))
    if not curves:
        return None
    fig = _figure(6.0, 3.6)
    ax = fig.subplots()
    for variant, steps, values in curves:
        ax.plot(steps, values, label=variant, lw=1.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    if all(v > 0 for _, _, vs in curves for v in vs):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(
        f"Table {report.table.id}: training loss per variant ({', '.join(report.scales)})", fontsize=10
    )
    fig.savefig(path)
    return path


# ---------------------------------------------------------------------------------------------
# Sample frames
# ---------------------------------------------------------------------------------------------


def _frames_from_image(path: Path, count: int) -> list[np.ndarray]:
    """``count`` evenly spaced frames of a GIF (or the one frame of a PNG/JPEG), as RGB arrays."""
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return [frames[i] for i in idx]


def read_npz_clips(path: Path, count: int) -> np.ndarray:
    """The first ``count`` clips of ``videos`` (else ``arr_0``) in a samples ``.npz`` as uint8
    (k, T, H, W, 3), reading only those rows (a 10,000-clip file is never loaded whole)."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        name = next((n for n in ("videos.npy", "arr_0.npy") if n in names), None)
        if name is None:
            raise ValueError(f"{path} has no 'videos' or 'arr_0' array (has {names})")
        with zf.open(name) as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            if fortran or len(shape) not in (4, 5):
                raise ValueError(
                    f"{path}:{name} has shape {shape} (fortran={fortran}); expected (N, T, H, W, 3)"
                )
            k = min(count, shape[0])
            row = int(np.prod(shape[1:]))
            arr = np.frombuffer(f.read(k * row * dtype.itemsize), dtype=dtype).reshape(k, *shape[1:])
    if arr.ndim == 4:  # images (N, H, W, 3) -> one-frame videos
        arr = arr[:, None]
    if arr.dtype != np.uint8:  # floats: [-1, 1] (pixels leave the data layer so) or [0, 1]
        a = arr.astype(np.float32)
        a = (a + 1) / 2 if a.min() < 0 else a
        arr = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    return arr


def sample_grid(result: LoadedResult, path: Path, title: str) -> Path | None:
    """A PNG of a few frames of a few clips: rows = clips (npz) or the sample grid's frames side by side."""
    npz, gif = result.artifact("samples_npz"), result.artifact("samples_grid")
    if npz is not None:
        clips = read_npz_clips(npz, CLIPS_SHOWN)
        t = clips.shape[1]
        idx = np.linspace(0, t - 1, min(FRAMES_SHOWN, t)).round().astype(int)
        grid = [[clip[i] for i in idx] for clip in clips]
        caption = f"first {len(clips)} clips, frames {', '.join(str(i) for i in idx)} of {t}"
    elif gif is not None:
        grid = [_frames_from_image(gif, FRAMES_SHOWN)]
        caption = f"{gif.name}: {len(grid[0])} evenly spaced frames"
    else:
        return None
    rows, cols = len(grid), len(grid[0])
    fig = _figure(1.6 * cols + 0.4, 1.6 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(rows):
        for j in range(cols):
            axes[i][j].imshow(grid[i][j])
            axes[i][j].set_axis_off()
    fig.suptitle(f"{title}\n{caption}", fontsize=9)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------------------------------------
# All plots of one table
# ---------------------------------------------------------------------------------------------


def plot_table(report: TableReport, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Every plot of one table under ``out_dir`` (``plots/``); returns (written, skipped: one line each)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t = report.table
    written: list[Path] = []
    skipped: list[str] = []
    if t.kind == "ablation":
        p = ablation_bars(report, out_dir / f"table{t.id}-ours-vs-paper.png")
        (written.append(p) if p else skipped.append(f"Table {t.id} ours-vs-paper bars: no results of ours"))
    p = training_curves(report, out_dir / f"table{t.id}-loss.png")
    (written.append(p) if p else skipped.append(f"Table {t.id} loss curves: no metrics_jsonl artifact found"))
    for variant, r in report.rows.items():
        if r.result.status != "complete":
            continue
        target = out_dir / f"table{t.id}-samples-{slug(variant)}.png"
        try:
            p = sample_grid(r, target, f"Table {t.id} {variant} ({r.result.scale})")
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            skipped.append(f"Table {t.id} {variant} samples: unreadable ({exc})")
            continue
        if p:
            written.append(p)
        else:
            skipped.append(f"Table {t.id} {variant} samples: no samples_npz or samples_grid artifact found")
    return written, skipped
