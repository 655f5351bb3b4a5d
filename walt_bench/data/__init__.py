"""walt_bench.data: dataset readers (UCF-101, Kinetics-600, ImageNet), joint image-video batches,
the embedded synthetic dataset and the ``data`` CLI commands.

    from walt_bench.data.loader import build_dataset, build_loader
    build_dataset(cfg: DataConfig, split=None) -> Dataset of {"video", "label", "is_image", "index"}
    build_loader(cfg, batch_size, *, seed, rank=0, world_size=1, start_step=0, split=None, drop_last=True)
    from walt_bench.data.synthetic import synthesize     # synthesize(out_dir, videos=6, seed=0, ...) -> Path

This file imports nothing, so ``import walt_bench.data.config`` loads neither torch nor decord/PyAV.
"""
