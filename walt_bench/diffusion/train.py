"""``walt-bench train``: the W.A.L.T diffusion model trained through the shared engine.

    walt-bench train --spec experiments/smoke/default.yaml            # one process (CPU or one GPU)
    torchrun --nproc_per_node 8 -m walt_bench train --spec experiments/tables/table1-ucf101-L.yaml

Data (``diffusion.latent_source``): ``cache`` reads the latent cache of the spec's tokenizer and data
(``<run.out_dir>/latents-<identity>`` or ``tokenizer.cache_dir``, written by ``walt-bench tokenizer encode``; its
per-channel stats normalise the latents) and refuses a cache made by another tokenizer; ``encode`` encodes clips
from ``data`` on the fly with the frozen tokenizer (stats estimated on ``diffusion.norm_stats_batches`` batches,
the same batches on every rank), as joint image-video training and super-resolution stages (the low-res latent
is the tokenizer's latent of the clip downsampled 2x) need. The normalisation stats are buffers of
:class:`LatentDiffusionModel`, so they are saved in every checkpoint and used by ``walt-bench sample``. Every
checkpoint records its provenance (``extra``): the latent cache (identity, path, manifest SHA-256) and the
tokenizer (identity, checkpoint, SHA-256) it was trained on; ``walt-bench sample`` decodes with that tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from walt_bench.diffusion.cascade import downsample_video
from walt_bench.diffusion.objective import LatentNormalizer, latent_stats
from walt_bench.diffusion.schedule import NoiseSchedule
from walt_bench.diffusion.step import DiffusionObjective


class LatentDiffusionModel(nn.Module):
    """The trained part: the WALT denoiser plus the latent normaliser whose stats it was trained with."""

    def __init__(self, denoiser: nn.Module, latent_channels: int, latent_norm: bool = True):
        super().__init__()
        self.denoiser = denoiser
        self.normalizer = LatentNormalizer(latent_channels, enabled=latent_norm)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.denoiser(z_t, t, **kwargs)

    def fsdp_units(self) -> list[nn.Module]:
        units = getattr(self.denoiser, "fsdp_units", None)
        return list(units()) if units is not None else []


def build_model(spec) -> LatentDiffusionModel:
    from walt_bench.denoiser.model import build_denoiser

    return LatentDiffusionModel(
        build_denoiser(spec), spec.tokenizer.latent_channels, spec.diffusion.latent_norm
    )


def build_objective(spec) -> DiffusionObjective:
    m = spec.model
    return DiffusionObjective(
        spec.diffusion,
        NoiseSchedule.from_config(spec.diffusion),
        num_classes=spec.data.num_classes,
        self_condition=m.self_condition,
        frame_condition=m.frame_condition,
        lowres_condition=m.lowres_condition,
    )


# -- data ------------------------------------------------------------------------------------------
class _CacheItems(torch.utils.data.Dataset):
    """A latent cache read with the data layer's sampler keys (``ItemKey`` -> its index)."""

    def __init__(self, cache):
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, key) -> dict[str, Any]:
        return self.cache[int(key.index) if hasattr(key, "index") else int(key)]


def _collate_latents(items: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "latent": torch.stack([it["latent"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "is_image": torch.tensor([bool(it["is_image"]) for it in items], dtype=torch.bool),
    }


def latent_loader(
    cache, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1, start_step: int = 0
):
    """Infinite, deterministic, resumable batches ``{"latent", "label", "is_image"}`` from a latent cache,
    with the data layer's :class:`~walt_bench.data.loader.ShardedBatchSampler` (same order scheme)."""
    from torch.utils.data import DataLoader

    from walt_bench.data.loader import ShardedBatchSampler

    sampler = ShardedBatchSampler(
        len(cache), batch_size, seed=seed, rank=rank, world_size=world_size, start_step=start_step
    )
    return DataLoader(_CacheItems(cache), batch_sampler=sampler, collate_fn=_collate_latents, num_workers=0)


class OnTheFlyEncoder:
    """Frozen tokenizer turning pixel batches into latents (images of a stack encoded one by one, §4.1)."""

    def __init__(self, tokenizer: nn.Module, latent_frames: int):
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.latent_frames = latent_frames

    @torch.no_grad()
    def __call__(self, video: torch.Tensor, is_image: torch.Tensor | None = None) -> torch.Tensor:
        tok = self.tokenizer.to(video.device)
        if is_image is None or not bool(is_image.any()):
            return tok.encode(video).float()
        z = torch.empty(0)
        if bool((~is_image).any()):
            z_vid = tok.encode(video[~is_image]).float()
            z = z_vid.new_zeros((video.shape[0], *z_vid.shape[1:]))
            z[~is_image] = z_vid
        imgs = video[is_image][:, : self.latent_frames]  # (Bi, t, 3, H, W): t independent images
        bi = imgs.shape[0]
        z_img = tok.encode(imgs.reshape(bi * self.latent_frames, 1, *imgs.shape[2:])).float()
        z_img = z_img.reshape(bi, self.latent_frames, *z_img.shape[2:])
        if z.numel() == 0:
            z = z_img.new_zeros((video.shape[0], *z_img.shape[1:]))
        z[is_image] = z_img
        return z


def open_cache(spec):
    """The latent cache of ``spec`` and its provenance; refuses one made by another tokenizer or of other shape."""
    from walt_bench.data.latents import LatentCache
    from walt_bench.errors import DataError
    from walt_bench.hashing import file_sha256
    from walt_bench.identity import stage_dir, stage_identity

    path = stage_dir(spec, "latents")
    if not (path / "manifest.json").is_file():
        raise DataError(
            f"train: no latent cache at {path} (latents of identity {stage_identity(spec.to_dict(), 'latents')}). "
            f"Write it with `walt-bench tokenizer encode --spec FILE` (same spec and overrides), or train on the fly "
            f"with diffusion.latent_source=encode"
        )
    cache = LatentCache(path)
    made_with = cache.manifest.get("tokenizer") or {}
    wanted = stage_identity(spec.to_dict(), "tokenizer")
    if spec.tokenizer.checkpoint:
        ok = made_with.get("sha256") == file_sha256(spec.tokenizer.checkpoint)
        wanted_text = f"tokenizer.checkpoint {spec.tokenizer.checkpoint}"
    else:
        ok = made_with.get("identity") == wanted
        wanted_text = f"tokenizer {wanted}"
    if not ok:
        raise DataError(
            f"train: latent cache {path} was made by tokenizer {made_with.get('identity', '(unrecorded)')} "
            f"({made_with.get('checkpoint', '?')}), but this spec's is {wanted_text}. Re-encode with this spec "
            "(`walt-bench tokenizer encode --spec FILE --overwrite`) or point tokenizer.cache_dir at its own cache"
        )
    expected = (spec.latent_shape[0], spec.tokenizer.latent_channels, *spec.latent_shape[1:])
    if tuple(cache.latent_shape) != expected:
        raise DataError(
            f"latent cache {path} holds latents {tuple(cache.latent_shape)} (t, c, h, w) but the spec needs "
            f"{expected}; re-encode with this spec or point tokenizer.cache_dir elsewhere"
        )
    provenance = {
        "latents": {
            "identity": cache.manifest.get("identity"),
            "path": str(path),
            "manifest_sha256": file_sha256(path / "manifest.json"),
        },
        "tokenizer": made_with,
    }
    return cache, provenance


def estimate_stats(encoder: OnTheFlyEncoder, spec, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel latent mean/std over the first ``diffusion.norm_stats_batches`` batches (rank-independent)."""
    from walt_bench.data.loader import build_loader

    loader = iter(build_loader(spec.data, batch_size, seed=spec.run.seed))
    zs = [
        encoder(b["video"], b["is_image"]) for _, b in zip(range(spec.diffusion.norm_stats_batches), loader)
    ]
    return latent_stats(torch.cat(zs))


# -- the command's work ----------------------------------------------------------------------------
def run_train(
    spec,
    *,
    resume: str = "auto",
    progress: bool | None = None,
    stop_at_step: int | None = None,
    allow_spec_mismatch: bool = False,
):
    """Train the diffusion model of ``spec``; returns the engine's ``TrainResult``."""
    from walt_bench.denoiser.info import model_info
    from walt_bench.engine.distributed import init_distributed, micro_batch_size
    from walt_bench.engine.loop import Part, train

    info = init_distributed(spec.run.device)
    micro = micro_batch_size(spec.train.batch_size, info.world_size, spec.train.grad_accum_steps)
    torch.manual_seed(spec.run.seed)  # same initial weights on every rank
    model = build_model(spec)
    objective = build_objective(spec)
    t_lat = spec.latent_shape[0]
    encoder = None
    if spec.diffusion.latent_source == "cache":
        cache, provenance = open_cache(spec)
        model.normalizer.set_stats(cache.mean, cache.std)

        def make_loader(start: int):
            return latent_loader(
                cache, micro, seed=spec.run.seed, rank=info.rank, world_size=info.world_size, start_step=start
            )
    else:
        from walt_bench.data.loader import build_loader
        from walt_bench.tokenizer.build import load_tokenizer, resolve_checkpoint
        from walt_bench.tokenizer.encode import tokenizer_provenance

        ckpt = resolve_checkpoint(spec)
        provenance = {"latents": None, "tokenizer": tokenizer_provenance(spec, ckpt)}
        encoder = OnTheFlyEncoder(load_tokenizer(spec, str(ckpt)).to(info.device), t_lat)
        if spec.diffusion.latent_norm:
            model.normalizer.set_stats(*estimate_stats(encoder, spec, micro))

        def make_loader(start: int):
            return build_loader(
                spec.data,
                micro,
                seed=spec.run.seed,
                rank=info.rank,
                world_size=info.world_size,
                start_step=start,
            )

    def loss_fn(batch: dict, ctx) -> tuple[torch.Tensor, dict]:
        norm = ctx.raw["denoiser"].normalizer
        lowres = None
        if "latent" in batch:
            z0 = batch["latent"].float()
        else:
            z0 = encoder(batch["video"], batch["is_image"])
            if spec.model.lowres_condition:
                lowres = norm.normalize(encoder(downsample_video(batch["video"]), batch["is_image"]))
        return objective(
            ctx.modules["denoiser"],
            norm.normalize(z0),
            labels=batch["label"],
            is_image=batch["is_image"],
            lowres=lowres,
            generator=ctx.generator,
        )

    from walt_bench.identity import identity_fields, stage_dir, stage_identity
    from walt_bench.tracking.mlflow import stage_tracker

    d = spec.to_dict()
    identity = stage_identity(d, "diffusion")
    tracker = stage_tracker(spec, "diffusion", identity, enabled=info.is_main)
    stats = model_info(model.denoiser)
    return train(
        [Part("denoiser", model, loss_fn)],
        make_loader,
        train_cfg=spec.train,
        run_dir=stage_dir(spec, "diffusion"),
        seed=spec.run.seed,
        device=spec.run.device,
        identity=identity,
        identity_fields=identity_fields(d, "diffusion"),
        spec_dict=d,
        tracker=tracker,
        extra=provenance,
        resume=resume,
        allow_spec_mismatch=allow_spec_mismatch,
        tokens_per_sample=stats["tokens_per_sample"],
        flops_per_sample=train_flops_per_sample(spec, stats, micro),
        stop_at_step=stop_at_step,
        progress=progress,
        desc="diffusion",
    )


def train_flops_per_sample(spec, stats: dict, micro_batch: int) -> float:
    """Training FLOPs per example as the objective runs them: forward + backward, plus the gradient-free
    self-conditioning pass, which runs on the whole micro-batch whenever any of its examples draws it (§4.3)."""
    p = spec.diffusion.p_sc if spec.model.self_condition else 0.0
    runs_sc = 1.0 - (1.0 - p) ** micro_batch
    return stats["train_flops_per_sample"] + runs_sc * stats["forward_flops_per_sample"]
