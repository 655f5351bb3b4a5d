"""``walt-bench sample``: clips from a trained diffusion checkpoint (EMA weights when present).

    walt-bench sample --spec S.yaml --num 10000            # the newest checkpoint of the spec's diffusion run
    walt-bench sample --spec S.yaml --ckpt runs/diffusion-x/checkpoints/step_00060000.pt --num 10000
    walt-bench sample --spec base.yaml --ckpt base.pt --sr sr1.yaml sr1.pt --sr sr2.yaml sr2.pt --num 16 --out s/
    torchrun --nproc_per_node 8 -m walt_bench sample --spec S.yaml --num 10000     # the same clips, 8x faster

Writes to ``OUT`` (default ``<run.out_dir>/samples-<identity>``, the samples stage's identity: diffusion run +
checkpoint step + sampling fields + seed + count) ``shards/shard_*.npz`` (one per ``--batch-size`` clips: uint8
videos (n, T, H, W, 3), int64 labels, their row range; the evaluators' input, ``walt_bench.diffusion.export``),
``samples.json`` (identity, checkpoint and its SHA-256, tokenizer, seed, settings; written last, it marks the
folder complete), ``videos/sample_*.mp4`` (the first ``--max-files`` clips) and ``grid.gif`` (the first 16).

Scale: memory holds one batch, never the N clips. Under ``torchrun`` the shards are dealt to the ranks
round-robin; sample i's noise (initial, DDIM η, SR noise augmentation) comes from its own generator seeded
``derive_seed(seed, i)`` and its label from ``derive_seed(seed, 0x1AB, i)``, so the clips do not depend on the
number of processes or on the batch size (up to the float rounding of batched kernels, which the same batch
size also fixes). A stopped generation resumes: rerun the same command and the finished shards are kept
(``shards/plan.json`` says which generation they belong to). Finished samples of the same identity are reused.

A checkpoint whose model or diffusion-training fields contradict the spec is refused (listing them) unless
``allow_spec_mismatch``; clips are decoded with the tokenizer the checkpoint records it was trained on. With
``diffusion.sample_context_frames = k`` (K600 protocol: k = 2) the first k latent frames come from the
tokenizer's latents of real clips of ``--split`` (item i for sample i: their first 1 + f_t (k - 1) frames) and
the labels are theirs. With ``diffusion.sample_chunks > 1`` chunks are generated autoregressively, each
conditioned on the re-encoded last frames of the previous one (appendix), and stitched in pixel space. All
cascade stages share the spec's tokenizer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.diffusion.generate import StageSampler
from walt_bench.engine.distributed import derive_seed
from walt_bench.errors import UserError
from walt_bench.identity import samples_dir, samples_identity

SAMPLES_FORMAT = 2  # shards/ + per-sample seeds (1: one samples.npz, one seed per batch)

# Recorded identity fields a sampler must agree with: what the network is and how it was trained to denoise.
_SAMPLING_CONTRACT = (
    "model.",
    "diffusion.",
    "data.num_classes",
    "data.num_frames",
    "data.height",
    "data.width",
)


def contract_mismatch(ckpt: dict, spec) -> list[str]:
    """Differences between a diffusion checkpoint's model/diffusion-training fields (and the tokenizer geometry)
    and ``spec``'s, as ``'field: recorded X, spec Y'``."""
    from walt_bench.identity import field_diff, identity_fields

    def keep(key: str) -> bool:
        tokenizer_arch = key.startswith("tokenizer.") and not key.startswith("tokenizer.train.")
        return key.startswith(_SAMPLING_CONTRACT) or tokenizer_arch

    recorded = {k: v for k, v in (ckpt.get("identity_fields") or {}).items() if keep(k)}
    current = {k: v for k, v in identity_fields(spec.to_dict(), "diffusion").items() if keep(k)}
    return field_diff(recorded, current)


def load_stage(
    spec, ckpt: str | Path, device: torch.device, *, allow_spec_mismatch: bool = False
) -> tuple[StageSampler, dict]:
    """The sampler of one trained stage and its checkpoint's record (``weights``: "ema" or "model", identity,
    step, provenance). Refuses a checkpoint that contradicts ``spec`` unless ``allow_spec_mismatch``."""
    import warnings

    from walt_bench.diffusion.train import build_model
    from walt_bench.engine.checkpoint import load_checkpoint, load_weights
    from walt_bench.engine.loop import autocast_dtype
    from walt_bench.errors import CheckpointError

    loaded = load_checkpoint(ckpt)
    diffs = contract_mismatch(loaded, spec)
    if diffs:
        listing = "\n".join(f"  - {d}" for d in diffs)
        msg = f"checkpoint {ckpt} was trained with other model/diffusion settings than the spec:\n{listing}"
        if not allow_spec_mismatch:
            raise CheckpointError(
                msg
                + "\nSample with the spec it was trained with, or pass --allow-spec-mismatch to sample it "
                "with the spec's settings anyway."
            )
        warnings.warn(msg + "\nSampling with the spec's settings (--allow-spec-mismatch).", stacklevel=2)
    model = build_model(spec)
    which = load_weights(ckpt, model, part="denoiser", use_ema=True, ckpt=loaded)
    model = model.to(device).eval()
    record = {
        "weights": which,
        "identity": loaded["identity"],
        "step": int(loaded["step"]),
        "provenance": {k: v for k, v in (loaded.get("extra") or {}).items() if k in ("latents", "tokenizer")},
    }
    return stage_sampler(spec, model, autocast=autocast_dtype(spec.train.precision, device)), record


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


def trained_tokenizer(spec, provenance: dict, device):
    """The tokenizer a diffusion checkpoint records it was trained on (path + SHA-256), in eval mode.

    When the recorded file has moved, the spec's tokenizer is used if its SHA-256 is the recorded one; any
    other tokenizer would decode latents it never made, so that is an error.
    """
    from walt_bench.errors import CheckpointError
    from walt_bench.hashing import file_sha256
    from walt_bench.tokenizer.build import load_tokenizer, resolve_checkpoint

    recorded = provenance.get("tokenizer") or {}
    path, sha = recorded.get("checkpoint"), recorded.get("sha256")
    if not path:  # a checkpoint without provenance: the spec's tokenizer is all we know
        return load_tokenizer(spec).to(device).eval(), None
    if not Path(path).is_file() or (sha and file_sha256(path) != sha):
        candidate = resolve_checkpoint(spec)
        if sha and file_sha256(candidate) != sha:
            raise CheckpointError(
                f"the diffusion checkpoint was trained on latents of tokenizer {path} (sha256 {sha[:12]}), which is "
                f"missing or changed, and the spec's tokenizer {candidate} is another one. Restore that tokenizer "
                "checkpoint or set tokenizer.checkpoint to it."
            )
        path = str(candidate)
    return load_tokenizer(spec, path).to(device).eval(), path


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
    generator,
    device,
    num_chunks: int = 1,
    overlap: int = 5,
) -> torch.Tensor:
    """One batch of pixel clips (n, T', 3, H, W): base stage (autoregressive when ``num_chunks > 1``), then the
    SR stages on every chunk, decoded and stitched (chunk i > 0 drops its ``overlap`` re-encoded context frames).
    ``generator``: one ``torch.Generator``, or a list of n (one per clip, as ``run_sample`` passes).
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


def latest_run_checkpoint(spec) -> Path:
    """The newest checkpoint of ``spec``'s diffusion run (``<run.out_dir>/diffusion-<identity>/checkpoints``)."""
    from walt_bench.engine.checkpoint import latest_checkpoint
    from walt_bench.errors import CheckpointError
    from walt_bench.identity import stage_dir

    ckpt_dir = stage_dir(spec, "diffusion") / "checkpoints"
    found = latest_checkpoint(ckpt_dir)
    if found is None:
        raise CheckpointError(
            f"no checkpoint in {ckpt_dir}: train this spec first (`walt-bench train --spec FILE` with the same "
            "overrides; sampling and eval fields may differ) or pass --ckpt PATH"
        )
    return found


def run_sample(
    spec,
    ckpt: str | Path | None,
    num: int,
    out_dir: str | Path | None = None,
    *,
    seed: int | None = None,
    batch_size: int = 16,
    sr: list[tuple[Any, str]] = (),
    split: str | None = None,
    progress: bool = True,
    max_files: int = 64,
    allow_spec_mismatch: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Sample ``num`` clips (see the module docstring); returns the ``samples.json`` record (+ ``"path"``).

    ``ckpt=None``: the newest checkpoint of the spec's diffusion run. ``out_dir=None``: the identity folder.
    Under ``torchrun`` every rank writes its own shards and every rank returns the record.
    """
    from tqdm.auto import tqdm

    from walt_bench.data.shards import assign, finished, plan_shards, write_shard
    from walt_bench.diffusion.export import to_uint8, write_mp4s
    from walt_bench.engine.distributed import all_gather_objects, barrier, init_distributed

    ckpt = Path(ckpt) if ckpt is not None else latest_run_checkpoint(spec)
    info = init_distributed(spec.run.device)
    device = info.device
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
    base, made = load_stage(spec, ckpt, device, allow_spec_mismatch=allow_spec_mismatch)
    loaded_sr = [load_stage(s, c, device, allow_spec_mismatch=allow_spec_mismatch) for s, c in sr]
    stages = [stage for stage, _ in loaded_sr]
    extra = {"split": split} if k_ctx else {}
    if sr:
        extra["sr"] = [[rec["identity"], rec["step"]] for _, rec in loaded_sr]
    identity = samples_identity(made["identity"], made["step"], spec.to_dict(), seed=seed, num=num, **extra)
    out_dir = Path(out_dir) if out_dir is not None else samples_dir(spec, identity)
    done = finished_samples(out_dir, identity)
    barrier(info)  # every rank has looked before rank 0 clears anything
    if done is not None and not overwrite:
        if info.is_main:
            print(f"samples {identity} already in {out_dir}; reusing them (--overwrite to sample again)")
        return {**done, "path": str(out_dir), "reused": True}

    # 1. the plan: rank 0 clears stale or overwritten shards, keeps finished ones of this identity (resume)
    shard_dir = out_dir / "shards"
    if info.is_main:
        shard_size = _prepare_shards(out_dir, identity, num, batch_size, overwrite=overwrite)
        plan = plan_shards(num, shard_size)
        todo = [k for k in range(len(plan)) if k not in finished(shard_dir, plan)]
        if len(todo) < len(plan):
            print(f"resuming {identity}: {len(plan) - len(todo)} of {len(plan)} shards already written")
    shard_size, todo = all_gather_objects((shard_size, todo) if info.is_main else None, info)[0]
    plan = plan_shards(num, shard_size)
    mine = assign(todo, info.rank, info.world_size)

    # 2. this rank's shards: sample i is seeded by (seed, i) alone, so any split over ranks and batches gives
    #    the same clips as one process
    tokenizer, tokenizer_path = trained_tokenizer(spec, made["provenance"], device)
    dataset = _context_source(spec, split) if k_ctx else None
    k_ar = cfg.ar_context_frames
    overlap = 1 + f_t * (k_ar - 1)  # pixel frames re-encoded into k_ar latent frames
    t0 = time.perf_counter()
    for k in tqdm(mine, desc="sample", unit="shard", disable=not (progress and info.is_main)):
        rows = plan[k]
        gens = [torch.Generator(device).manual_seed(derive_seed(seed, i)) for i in rows]
        context, y = None, None
        if dataset is not None:
            items = [dataset[i % len(dataset)] for i in rows]
            clips = torch.stack([it["video"] for it in items]).to(device)
            with torch.no_grad():
                context = tokenizer.encode(clips[:, : 1 + f_t * (k_ctx - 1)]).float()
            y = torch.tensor([it["label"] for it in items], dtype=torch.long)
        elif spec.data.num_classes > 0:
            y = sample_labels(seed, rows, spec.data.num_classes)
        video = generate_batch(
            base,
            stages,
            tokenizer,
            len(rows),
            labels=y,
            context=context,
            generator=gens,
            device=device,
            num_chunks=cfg.sample_chunks,
            overlap=overlap,
        )
        videos = to_uint8(video)
        labels = (y if y is not None else torch.zeros(len(rows), dtype=torch.long)).numpy().astype(np.int64)
        if rows.start < max_files:  # the MP4s first: the shard file marks its clips done
            write_mp4s(videos[: max_files - rows.start], out_dir, start=rows.start)
        write_shard(shard_dir, k, rows, videos=videos, labels=labels)
    made_here = sum(len(plan[k]) for k in mine)
    wall = time.perf_counter() - t0

    # 3. rank 0 checks the shards tile [0, num), writes the grid and the record (last); every rank returns it
    walls = all_gather_objects((made_here, wall), info)
    record = None
    if info.is_main:
        record = _finish(
            spec, out_dir, identity, made, loaded_sr, sr, ckpt, tokenizer_path, seed, num, walls, extra
        )
    record = all_gather_objects(record, info)[0]
    return {**record, "path": str(out_dir)}


def sample_labels(seed: int, rows: range, num_classes: int) -> torch.Tensor:
    """Class labels of samples ``rows``: sample i's label is drawn uniformly from its own seed (seed, 0x1AB, i)."""
    labels = []
    for i in rows:
        g = torch.Generator().manual_seed(derive_seed(seed, 0x1AB, i))
        labels.append(int(torch.randint(0, num_classes, (1,), generator=g)))
    return torch.tensor(labels, dtype=torch.long)


def _prepare_shards(out_dir: Path, identity: str, num: int, batch_size: int, *, overwrite: bool) -> int:
    """Make ``out_dir/shards`` ready for the generation of ``identity`` and return its shard size.

    Shards of another identity (or of an older layout), and every shard with ``overwrite``, are deleted; the
    shards of an interrupted generation of the same identity stay, and its recorded shard size wins (so they
    can be reused).
    """
    import json
    import shutil

    shard_dir, plan_file = out_dir / "shards", out_dir / "shards" / "plan.json"
    want = {"identity": identity, "num": int(num), "shard_size": int(batch_size), "format": SAMPLES_FORMAT}
    recorded = json.loads(plan_file.read_text()) if plan_file.is_file() else None
    same = recorded is not None and all(recorded.get(k) == want[k] for k in ("identity", "num", "format"))
    (out_dir / "samples.json").unlink(missing_ok=True)  # the folder is incomplete until the record is back
    if overwrite or not same:
        shutil.rmtree(shard_dir, ignore_errors=True)
        for stale in ("samples.npz", "grid.gif"):
            (out_dir / stale).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "videos", ignore_errors=True)
    elif recorded["shard_size"] != batch_size:
        print(
            f"resuming with the interrupted generation's shard size {recorded['shard_size']} "
            f"(--batch-size {batch_size} ignored)"
        )
        want["shard_size"] = int(recorded["shard_size"])
    shard_dir.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(want, indent=2))
    return want["shard_size"]


def _finish(spec, out_dir, identity, made, loaded_sr, sr, ckpt, tokenizer_path, seed, num, walls, extra):
    """Rank 0, after every shard is written: grid, record (samples.json, last)."""
    from walt_bench.data.shards import ShardedRows
    from walt_bench.diffusion.export import write_gif_grid, write_record
    from walt_bench.engine.rundir import versions
    from walt_bench.hashing import file_sha256

    cfg = spec.diffusion
    videos = ShardedRows(out_dir / "shards", "videos")  # raises unless the shards tile [0, num)
    if len(videos) != num:
        raise UserError(
            f"sample: the shards in {out_dir / 'shards'} hold {len(videos)} clips, expected {num}"
        )
    write_gif_grid(next(videos.iter_blocks(16)), out_dir / "grid.gif")
    made_now = sum(n for n, _ in walls)
    wall = max(w for _, w in walls)
    record = {
        "identity": identity,
        "diffusion_identity": made["identity"],
        "step": made["step"],
        "spec_hash": spec.hash,
        "checkpoint": str(ckpt),
        "checkpoint_sha256": file_sha256(ckpt),
        "weights": made["weights"],
        "tokenizer_checkpoint": tokenizer_path,
        "provenance": made["provenance"],
        "sr_stages": [
            {"identity": rec["identity"], "step": rec["step"], "checkpoint": str(c)}
            for (_, rec), (_, c) in zip(loaded_sr, sr)
        ],
        "seed": seed,
        "seeding": "per-sample: noise derive_seed(seed, i), label derive_seed(seed, 0x1AB, i)",
        "format": SAMPLES_FORMAT,
        "num": int(len(videos)),
        "shape": list(videos.shape),
        "shards": len(videos.files),
        "sample_steps": cfg.sample_steps,
        "guidance_scale": cfg.guidance_scale,
        "eta": cfg.eta,
        "world_size": len(walls),
        "generated_now": made_now,  # fewer than num when a stopped generation was resumed
        "wall_time_s": wall,
        "clips_per_s": made_now / wall if wall > 0 else None,
        "command": "walt-bench sample",
        "versions": versions(),
        **({"split": extra["split"]} if "split" in extra else {}),
    }
    write_record(out_dir, record)  # last: it marks the folder complete
    return record


def finished_samples(out_dir: Path, identity: str | None = None) -> dict | None:
    """The ``samples.json`` record of a complete folder of these samples (any, when ``identity`` is None), else
    None. Folders of the older single-file layout (``samples.npz``, per-batch seeds) do not count."""
    import json

    record_file = Path(out_dir) / "samples.json"
    if not (record_file.is_file() and (Path(out_dir) / "shards").is_dir()):
        return None
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    if record.get("format") != SAMPLES_FORMAT:
        return None
    return record if identity is None or record.get("identity") == identity else None
