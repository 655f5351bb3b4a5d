"""Writing generated clips: MP4 per clip (PyAV), one GIF grid for review (PIL), and the evaluators' input.

The evaluators' input (shared contract) is a samples folder::

    shards/shard_00000.npz ...   ``videos`` uint8 (n, T, H, W, 3), ``labels`` int64 (n,), ``start``, ``stop``:
                                 rows [start, stop) of the N clips (``walt_bench.data.shards``), one per batch
    shards/plan.json             identity, count and shard size of the generation the shards belong to
    samples.json                 the record; written last, it marks the folder complete

``walt_bench.evaluation.samples.open_samples(DIR)`` reads the shards as one (N, T, H, W, 3) array in blocks;
:func:`load_samples` reads a small folder whole (tests, notebooks).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """Pixels (B, T, 3, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3)."""
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).cpu().numpy()


def write_mp4s(videos: np.ndarray, out_dir: Path, *, start: int = 0, fps: float = 8.0) -> list[Path]:
    """One MPEG-4 Part 2 ``.mp4`` per clip (uint8 (N, T, H, W, 3)), named ``sample_00000.mp4`` ..."""
    from walt_bench.data.video_io import write_video

    paths = []
    for i, clip in enumerate(videos):
        path = out_dir / "videos" / f"sample_{start + i:05d}.mp4"
        write_video(path, _even(clip), fps=fps, codec="mpeg4", codec_tag=None)
        paths.append(path)
    return paths


def _even(clip: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: pad one row/column by edge replication when odd."""
    h, w = clip.shape[1:3]
    return np.pad(clip, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else clip


def write_gif_grid(videos: np.ndarray, path: Path, *, max_clips: int = 16, fps: float = 8.0) -> Path:
    """An animated GIF tiling up to ``max_clips`` clips (uint8 (N, T, H, W, 3)) in a near-square grid."""
    from PIL import Image

    clips = videos[:max_clips]
    n, t, h, w, _ = clips.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((t, rows * (h + 2), cols * (w + 2), 3), dtype=np.uint8)
    for i, clip in enumerate(clips):
        r, c = divmod(i, cols)
        grid[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = clip
    frames = [Image.fromarray(f) for f in grid]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


def write_record(out_dir: Path, info: dict[str, Any]) -> None:
    """``samples.json``, atomically (write it last: it marks the folder complete)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".samples.json.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    tmp.replace(out_dir / "samples.json")


def load_samples(out_dir: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(videos uint8 (N, T, H, W, 3), labels int64 (N,))`` of a samples folder, whole: for small counts."""
    from walt_bench.data.shards import ShardedRows

    shards = Path(out_dir) / "shards"
    return ShardedRows(shards, "videos").read(limit), ShardedRows(shards, "labels").read(limit)
