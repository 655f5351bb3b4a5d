"""walt_bench.data: dataset readers (UCF-101, Kinetics-600, ImageNet), joint image-video batches,
the embedded synthetic dataset and the ``data`` CLI commands.

Public API (imported lazily, so ``import walt_bench.data`` loads neither torch nor decord/PyAV)::

    build_dataset(cfg: DataConfig, split=None) -> Dataset of {"video", "label", "is_image", "index"}
    build_loader(cfg, batch_size, *, seed, rank=0, world_size=1, start_step=0, split=None, drop_last=True)
    synthesize(out_dir, videos=6, seed=0, ...) -> Path    # UCF-101 layout
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["build_dataset", "build_loader", "synthesize"]

if TYPE_CHECKING:
    from walt_bench.data.loader import build_dataset, build_loader
    from walt_bench.data.synthetic import synthesize


def __getattr__(name: str):
    if name in ("build_dataset", "build_loader"):
        from walt_bench.data import loader

        return getattr(loader, name)
    if name == "synthesize":
        from walt_bench.data.synthetic import synthesize

        return synthesize
    raise AttributeError(f"module 'walt_bench.data' has no attribute {name!r}")
