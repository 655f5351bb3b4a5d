"""The embedded dataset: procedurally generated, class-conditional videos in UCF-101's exact layout.

``walt-bench data synth --out data/synthetic`` (or :func:`synthesize`) writes::

    <out>/UCF-101/<Class>/v_<Class>_gXX_c01.avi      mpeg4 in AVI, fourcc XVID (like UCF-101)
    <out>/ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt
    <out>/synthetic.json                             how it was made, and what each class looks like

so the UCF-101 reader reads it unchanged. Class ``c`` is one shape in one colour moving in one direction at one
speed, some classes also spinning (e.g. ``RedDiscEast``, ``BlueTriangleNorthWest``): identity shows in
appearance *and* motion, so class-conditional generation and frame prediction have something to learn.
Per video, the start position, size, colour shade, speed (+-15 %) and the dark gradient background vary;
the object bounces off the borders. Every video is drawn from ``default_rng([seed, class, video])``, so the
output is deterministic (same bytes for the same arguments) and adding videos keeps the existing ones.

Splits mimic UCF-101's group-wise folds: video ``v`` of a class is group ``g{v:02d}``; fold k tests the k-th
third of the groups and trains on the rest. Default: 10 classes x 6 videos of 32 frames at 64x64, 25 fps
(well under a second to write), enough for 17-frame clips at stride 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from walt_bench.errors import UserError

SHAPES = ("Disc", "Square", "Triangle", "Diamond", "Plus", "Ring", "Hexagon", "Bar", "Ellipse", "HalfDisc")
COLOURS = {
    "Red": (225, 45, 45),
    "Green": (45, 200, 70),
    "Blue": (55, 95, 235),
    "Yellow": (235, 215, 45),
    "Magenta": (220, 55, 205),
    "Cyan": (45, 210, 220),
    "Orange": (245, 140, 30),
    "Purple": (135, 65, 205),
    "White": (235, 235, 235),
    "Pink": (250, 150, 180),
}
DIRECTIONS = ("East", "NorthEast", "North", "NorthWest", "West", "SouthWest", "South", "SouthEast")
SPEEDS = (0.6, 1.2, 1.8)  # pixels per frame at 64x64
SPINS = (0.0, 8.0, -8.0, 16.0)  # degrees per frame
MAX_CLASSES = len(SHAPES) * len(COLOURS)


def class_spec(c: int) -> dict:
    """Shape, colour and motion of class ``c``: (shape, colour) pairs are unique for c < 100."""
    shape = SHAPES[c % len(SHAPES)]
    colour = list(COLOURS)[(3 * c + c // len(SHAPES)) % len(COLOURS)]
    direction = (3 * c) % len(DIRECTIONS)
    return {
        "name": f"{colour}{shape}{DIRECTIONS[direction]}",
        "shape": shape,
        "colour": colour,
        "direction_deg": 45.0 * direction,
        "speed": SPEEDS[c % len(SPEEDS)],
        "spin_deg": SPINS[(c // len(SPEEDS)) % len(SPINS)],
    }


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------


def _polygon_sdf(x: np.ndarray, y: np.ndarray, sides: int, r: float) -> np.ndarray:
    """Signed distance (approximate outside the corners) to a regular convex polygon of circumradius r."""
    angles = np.pi / 2 + 2 * np.pi * (np.arange(sides) + 0.5) / sides  # edge normals
    apothem = r * math.cos(math.pi / sides)
    return np.max([x * math.cos(a) + y * math.sin(a) for a in angles], axis=0) - apothem


def _box_sdf(x: np.ndarray, y: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(x) - half_w, np.abs(y) - half_h)


def shape_sdf(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of ``shape`` with radius ``r`` centred at the origin."""
    radius = np.hypot(x, y)
    if shape == "Disc":
        return radius - r
    if shape == "Square":
        return _box_sdf(x, y, 0.8 * r, 0.8 * r)
    if shape == "Triangle":
        return _polygon_sdf(x, y, 3, 1.15 * r)
    if shape == "Diamond":
        return (np.abs(x) + np.abs(y) - 1.1 * r) / math.sqrt(2)
    if shape == "Plus":
        return np.minimum(_box_sdf(x, y, r, 0.33 * r), _box_sdf(x, y, 0.33 * r, r))
    if shape == "Ring":
        return np.abs(radius - 0.72 * r) - 0.28 * r
    if shape == "Hexagon":
        return _polygon_sdf(x, y, 6, r)
    if shape == "Bar":
        return _box_sdf(x, y, 1.1 * r, 0.3 * r)
    if shape == "Ellipse":
        return (np.hypot(x / 1.1, y / 0.55) - r) * 0.55
    if shape == "HalfDisc":
        return np.maximum(radius - r, y - 0.15 * r)
    raise ValueError(f"unknown shape {shape!r}")


def _bounce(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into [lo, hi] (a triangle wave), i.e. bouncing off the borders."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y <= span, y, 2 * span - y)


def render_video(c: int, video: int, seed: int, frames: int = 32, size: int = 64) -> np.ndarray:
    """Video ``video`` of class ``c`` -> uint8 ``(frames, size, size, 3)``."""
    spec = class_spec(c)
    rng = np.random.default_rng([seed, c, video])
    scale = size / 64.0
    r = size * rng.uniform(0.13, 0.18)
    colour = np.clip(np.array(COLOURS[spec["colour"]]) + rng.uniform(-15, 15, 3), 0, 255)
    speed = spec["speed"] * scale * rng.uniform(0.85, 1.15)
    heading = math.radians(spec["direction_deg"])
    velocity = np.array([math.cos(heading), -math.sin(heading)]) * speed  # image y points down
    start = rng.uniform(r, size - r, 2)
    angle0 = rng.uniform(0, 360)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    bg_a, bg_b = rng.uniform(8, 70, 3), rng.uniform(8, 70, 3)
    g = math.radians(rng.uniform(0, 360))
    ramp = ((xx * math.cos(g) + yy * math.sin(g)) / size + 1) / 2
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    background = bg_a + (bg_b - bg_a) * ramp[..., None]  # (H, W, 3)

    t = np.arange(frames)
    centres = np.stack([_bounce(start[i] + velocity[i] * t, r, size - r) for i in range(2)], axis=1)
    out = np.empty((frames, size, size, 3), np.uint8)
    for k in range(frames):
        theta = math.radians(angle0 + spec["spin_deg"] * k)
        dx, dy = xx - centres[k, 0], yy - centres[k, 1]
        lx = dx * math.cos(theta) + dy * math.sin(theta)
        ly = -dx * math.sin(theta) + dy * math.cos(theta)
        alpha = np.clip(0.5 - shape_sdf(spec["shape"], lx, ly, r), 0.0, 1.0)[..., None]
        out[k] = np.round(background * (1 - alpha) + colour * alpha).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------------------
# Writing the UCF-101 layout
# ---------------------------------------------------------------------------------------------------------


def fold_test_groups(fold: int, groups: int) -> set[int]:
    """1-based groups that fold ``fold`` (1..3) tests on: the fold's third of ``1..groups``."""
    return {g for g in range(1, groups + 1) if (g - 1) * 3 // groups == fold - 1}


def _check_destination(out: Path, meta: dict, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; give a new or empty folder for the dataset")
    if overwrite or not out.exists() or not any(out.iterdir()):
        return
    previous = None
    try:
        previous = json.loads((out / "synthetic.json").read_text())
    except (OSError, ValueError):
        pass
    if previous == meta:
        return  # the same synthetic dataset: writing it again gives the same bytes
    what = (
        "a synthetic dataset written with other arguments"
        if previous is not None
        else "a UCF-101 root (its class and split lists would be overwritten)"
        if (out / "ucfTrainTestlist").is_dir() or (out / "UCF-101").is_dir()
        else "other files"
    )
    raise UserError(
        f"--out {out} is not empty: it holds {what}. Give a new or empty folder, or pass --overwrite to write "
        "the synthetic dataset into it anyway (files of the same names are replaced, others are kept)."
    )


def synthesize(
    out_dir: str | Path,
    videos: int = 6,
    seed: int = 0,
    *,
    num_classes: int = 10,
    frames: int = 32,
    size: int = 64,
    fps: int = 25,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic dataset (``videos`` per class) in UCF-101's layout under ``out_dir``; return it.

    ``out_dir`` must be missing or empty, or hold a synthetic dataset written with the same arguments (written
    again, byte for byte); anything else (e.g. a real UCF-101 root, whose class and split lists would be
    overwritten) is refused unless ``overwrite``."""
    from walt_bench.data.video_io import write_video

    if not 1 <= num_classes <= MAX_CLASSES:
        raise UserError(f"num_classes={num_classes}: the synthetic dataset has 1..{MAX_CLASSES} classes")
    if videos < 3:
        raise UserError(
            f"videos={videos}: need at least 3 videos per class so each of the 3 folds has a test group"
        )
    if size < 8 or size % 2 or frames < 1:
        raise UserError(f"size={size}, frames={frames}: need an even size >= 8 and frames >= 1")
    out = Path(out_dir)
    meta = {
        "generator": "walt_bench.data.synthetic",
        "seed": seed,
        "videos_per_class": videos,
        "frames": frames,
        "size": size,
        "fps": fps,
        "classes": [class_spec(c) for c in range(num_classes)],
    }
    _check_destination(out, meta, overwrite)
    lists = out / "ucfTrainTestlist"
    try:
        lists.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--out {out}: cannot create the dataset folder there ({exc.strerror or exc})"
        ) from None
    specs = [class_spec(c) for c in range(num_classes)]
    train: dict[int, list[str]] = {1: [], 2: [], 3: []}
    test: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for c, spec in enumerate(specs):
        name = spec["name"]
        for v in range(1, videos + 1):
            rel = f"{name}/v_{name}_g{v:02d}_c01.avi"
            write_video(out / "UCF-101" / rel, render_video(c, v, seed, frames, size), fps=fps)
            for fold in (1, 2, 3):
                if v in fold_test_groups(fold, videos):
                    test[fold].append(rel)
                else:
                    train[fold].append(f"{rel} {c + 1}")
    crlf = "\r\n"  # UCF-101's lists use Windows line ends
    (lists / "classInd.txt").write_text("".join(f"{c + 1} {s['name']}{crlf}" for c, s in enumerate(specs)))
    for fold in (1, 2, 3):
        (lists / f"trainlist0{fold}.txt").write_text("".join(line + crlf for line in train[fold]))
        (lists / f"testlist0{fold}.txt").write_text("".join(line + crlf for line in test[fold]))
    (out / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
