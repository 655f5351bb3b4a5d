"""``walt-bench sample``: clips from a trained diffusion checkpoint (EMA weights when present).

    walt-bench sample --spec S.yaml --ckpt runs/x/checkpoints/step_00060000.pt --num 10000 --out samples/ucf
    walt-bench sample --spec base.yaml --ckpt base.pt --sr sr1.yaml sr1.pt --sr sr2.yaml sr2.pt --num 16 --out s/

Writes ``OUT/samples.npz`` (uint8 videos (N, T, H, W, 3), int64 labels; the evaluators' input),
``OUT/samples.json`` (spec hash, checkpoint, seed, settings), ``OUT/videos/sample_*.mp4`` and
``OUT/grid.gif``. Labels are drawn uniformly from the seed; with ``diffusion.sample_context_frames = k``
(K600 protocol: k = 2) the first k latent frames come from the tokenizer's latents of real clips of
``--split`` (their first 1 + f_t (k - 1) frames) and the labels are theirs. With ``diffusion.sample_chunks
> 1`` chunks are generated autoregressively, each conditioned on the re-encoded last frames of the
previous one (appendix), and stitched in pixel space. All cascade stages share the spec's tokenizer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.diffusion.generate import StageSampler
from walt_bench.errors import UserError


def load_stage(spec, ckpt: str | Path, device: torch.device) -> tuple[StageSampler, str]:
    """The sampler of one trained stage; returns it and which weights were loaded ("ema" or "model")."""
    from walt_bench.diffusion.train import build_model
    from walt_bench.engine.checkpoint import load_weights
    from walt_bench.engine.loop import autocast_dtype

    model = build_model(spec)
    which = load_weights(ckpt, model, part="denoiser", use_ema=True)
    model = model.to(device).eval()
    return stage_sampler(spec, model, autocast=autocast_dtype(spec.train.precision, device)), which


def stage_sampler(spec, model, *, autocast: torch.dtype | None = None) -> StageSampler:
    """The :class:`StageSampler` of ``spec`` for a built (and loaded) :class:`LatentDiffusionModel`.

    A model trained on an image dataset (``data.dataset = imagenet``: every item ``is_image``) samples with
    ``is_image`` set, so its spatiotemporal layers keep the identity attention they were trained with (§4.2).
    """
    m, t_lat = spec.model, spec.latent_shape
    return StageSampler(
        model,
        spec.diffusion,
        (t_lat[0], spec.tokenizer.latent_channels, t_lat[1], t_lat[2]),
        model.normalizer,
        num_classes=spec.data.num_classes,
        self_condition=m.self_condition,
        frame_condition=m.frame_condition,
        lowres_condition=m.lowres_condition,
        image=spec.data.dataset == "imagenet",
        autocast=autocast,
    )


def _load_tokenizer(spec, device):
    from walt_bench.tokenizer.build import load_tokenizer

    return load_tokenizer(spec, spec.tokenizer.checkpoint).to(device).eval()


def _context_source(spec, split: str | None):
    """The real clips whose first frames become frame-prediction contexts (item i for sample i)."""
    from walt_bench.data.loader import build_dataset

    dataset = build_dataset(spec.data, split)
    if len(dataset) == 0:
        raise UserError(
            f"sample: no clips in {spec.data.dataset} split {split or spec.data.split} for the context"
        )
    return dataset


@torch.no_grad()
def generate_batch(
    base: StageSampler,
    stages: list[StageSampler],
    tokenizer,
    n: int,
    *,
    labels: torch.Tensor | None,
    context: torch.Tensor | None,
    generator: torch.Generator,
    device,
    num_chunks: int = 1,
    overlap: int = 5,
) -> torch.Tensor:
    """One batch of pixel clips (n, T', 3, H, W): base stage (autoregressive when ``num_chunks > 1``), then the
    SR stages on every chunk, decoded and stitched (chunk i > 0 drops its ``overlap`` re-encoded context frames).
    """
    from walt_bench.diffusion.cascade import run_cascade

    def to_context(chunk: torch.Tensor) -> torch.Tensor:
        return tokenizer.encode(tokenizer.decode(chunk)[:, -overlap:]).float()

    def sr_stage(stage: StageSampler):
        return lambda z: stage.sample(n, labels=labels, lowres=z, generator=generator, device=device)

    if num_chunks > 1:
        chunks = base.sample_long(
            n,
            num_chunks,
            labels=labels,
            context=context,
            to_context=to_context,
            generator=generator,
            device=device,
        )
    else:
        chunks = [base.sample(n, labels=labels, context=context, generator=generator, device=device)]
    pieces = []
    for i, chunk in enumerate(chunks):
        finals = run_cascade(lambda c=chunk: c, [sr_stage(s) for s in stages])
        pixels = tokenizer.decode(finals[-1])
        pieces.append(pixels if i == 0 else pixels[:, overlap:])
    return torch.cat(pieces, dim=1)


def run_sample(
    spec,
    ckpt: str | Path,
    num: int,
    out_dir: str | Path,
    *,
    seed: int | None = None,
    batch_size: int = 16,
    sr: list[tuple[Any, str]] = (),
    split: str | None = None,
    progress: bool = True,
    max_files: int = 64,
) -> dict[str, Any]:
    """Sample ``num`` clips (see the module docstring); returns the ``samples.json`` record."""
    from tqdm.auto import tqdm

    from walt_bench.diffusion.export import to_uint8, write_gif_grid, write_mp4s, write_samples
    from walt_bench.engine.distributed import derive_seed, resolve_device
    from walt_bench.engine.rundir import versions

    out_dir = Path(out_dir)
    device = resolve_device(spec.run.device)
    seed = spec.run.seed if seed is None else seed
    cfg, f_t = spec.diffusion, spec.tokenizer.f_t
    k_ctx = cfg.sample_context_frames
    t_lat = spec.latent_shape[0]
    for name, k in (("sample_context_frames", k_ctx), ("ar_context_frames", cfg.ar_context_frames)):
        if k >= t_lat and (name == "sample_context_frames" or cfg.sample_chunks > 1):
            raise UserError(f"diffusion.{name}={k} leaves no latent frame to generate (the clip has {t_lat})")
    if (k_ctx or cfg.sample_chunks > 1) and not spec.model.frame_condition:
        raise UserError(
            "diffusion.sample_context_frames > 0 and sample_chunks > 1 need a model trained with "
            "model.frame_condition=true"
        )
    base, which = load_stage(spec, ckpt, device)
    stages = [load_stage(s, c, device)[0] for s, c in sr]
    tokenizer = _load_tokenizer(spec, device)
    dataset = _context_source(spec, split) if k_ctx else None
    label_gen = torch.Generator().manual_seed(derive_seed(seed, 0x1AB))
    k_ar = cfg.ar_context_frames
    overlap = 1 + f_t * (k_ar - 1)  # pixel frames re-encoded into k_ar latent frames

    videos, labels, t0 = [], [], time.perf_counter()
    n_batches = -(-num // batch_size)
    for b in tqdm(range(n_batches), desc="sample", unit="batch", disable=not progress):
        n = min(batch_size, num - b * batch_size)
        gen = torch.Generator(device).manual_seed(derive_seed(seed, b))
        context, y = None, None
        if dataset is not None:
            items = [dataset[(b * batch_size + i) % len(dataset)] for i in range(n)]
            clips = torch.stack([it["video"] for it in items]).to(device)
            with torch.no_grad():
                context = tokenizer.encode(clips[:, : 1 + f_t * (k_ctx - 1)]).float()
            y = torch.tensor([it["label"] for it in items], dtype=torch.long)
        elif spec.data.num_classes > 0:
            y = torch.randint(0, spec.data.num_classes, (n,), generator=label_gen)
        video = generate_batch(
            base,
            stages,
            tokenizer,
            n,
            labels=y,
            context=context,
            generator=gen,
            device=device,
            num_chunks=cfg.sample_chunks,
            overlap=overlap,
        )
        videos.append(to_uint8(video))
        labels.append((y if y is not None else torch.zeros(n, dtype=torch.long)).numpy())
    videos_np, labels_np = np.concatenate(videos), np.concatenate(labels)
    wall = time.perf_counter() - t0
    record = {
        "spec_hash": spec.hash,
        "checkpoint": str(ckpt),
        "weights": which,
        "sr_stages": [{"spec_hash": s.hash, "checkpoint": str(c)} for s, c in sr],
        "seed": seed,
        "num": int(len(videos_np)),
        "shape": list(videos_np.shape),
        "sample_steps": cfg.sample_steps,
        "guidance_scale": cfg.guidance_scale,
        "eta": cfg.eta,
        "wall_time_s": wall,
        "clips_per_s": len(videos_np) / wall if wall > 0 else None,
        "command": "walt-bench sample",
        "versions": versions(),
    }
    write_samples(out_dir, videos_np, labels_np, record)
    write_mp4s(videos_np[:max_files], out_dir)
    write_gif_grid(videos_np, out_dir / "grid.gif")
    return record
