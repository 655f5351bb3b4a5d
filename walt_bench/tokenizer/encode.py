"""``walt-bench tokenizer encode``: a dataset split -> a latent cache (``walt_bench.data.latents``) + stats.

Clips are read in dataset order with the spec's data settings (use ``data.clip_sampling=center`` for one fixed
clip per video), encoded with the trained tokenizer (posterior mean, fp32) and written in shards of
``tokenizer.cache_shard_size``, at ``<run.out_dir>/latents-<identity>`` (or ``tokenizer.cache_dir``). The manifest
records its identity, the tokenizer it was made with (identity, checkpoint path and full SHA-256, step), the
split, the counts, the normalisation stats and the versions: the trainer checks it, and a cache can always be
traced to what made it.

    walt-bench tokenizer encode --spec S.yaml
    torchrun --nproc_per_node 8 -m walt_bench tokenizer encode --spec S.yaml     # the same cache, 8x faster

Many processes: shard k (clips ``[k S, (k+1) S)``, S = ``tokenizer.cache_shard_size``) is written by rank
k mod world size into ``DIR.tmp``, each shard with its float64 per-channel sums; rank 0 then merges the
statistics exactly and writes the manifest (``walt_bench.data.latents``). Memory: one batch. A stopped encode
resumes: rerun it and the finished shards in ``DIR.tmp`` are kept (``plan.json`` there names the cache identity,
tokenizer and shard plan they belong to).

Unreadable clips are left out, never replaced by a neighbour (which would duplicate clips and bias the
normalisation stats): each is warned about by path, and the manifest lists them (``unreadable``) with their
count (``num_skipped``). More than ``data.max_unreadable_fraction`` of the split unreadable stops the encode.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from walt_bench.hashing import file_sha256
from walt_bench.tokenizer.build import load_tokenizer, resolve_checkpoint


def tokenizer_provenance(spec, ckpt: Path) -> dict[str, Any]:
    """What a latent cache or a diffusion run records of the tokenizer it used."""
    from walt_bench.engine.checkpoint import checkpoint_step
    from walt_bench.identity import stage_identity

    return {
        "identity": stage_identity(spec.to_dict(), "tokenizer"),
        "checkpoint": str(ckpt),
        "sha256": file_sha256(ckpt),
        "step": checkpoint_step(ckpt),
    }


class ReadableOnly(torch.utils.data.Dataset):
    """Items ``indices`` of a reader, read without substitution: an unreadable one becomes
    ``{"unreadable": path, "reason": ...}`` (which :func:`collate_readable` sets apart)."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        from walt_bench.data.video_io import UnreadableFileError

        try:
            return self.dataset.read(self.indices[i])
        except UnreadableFileError as err:
            return {"unreadable": err.path, "reason": err.reason}


def collate_readable(items: list[dict]) -> dict:
    """:func:`~walt_bench.data.loader.collate` of the readable items, plus ``"unreadable": [{"path", "reason"}]``."""
    from walt_bench.data.loader import collate

    good = [it for it in items if "unreadable" not in it]
    bad = [{"path": it["unreadable"], "reason": it["reason"]} for it in items if "unreadable" in it]
    batch = collate(good) if good else {"index": torch.zeros(0, dtype=torch.long)}
    return {**batch, "unreadable": bad}


def encode_dataset(
    spec,
    *,
    checkpoint: str | None = None,
    split: str | None = None,
    out: str | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode ``split`` (default ``data.split``) into a latent cache; returns its manifest (+ ``"path"``).

    Under ``torchrun`` the shards are dealt to the ranks round-robin; rank 0 merges them (every rank returns the
    manifest). A stopped encode resumes from the shards in ``DIR.tmp``.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from walt_bench.data.latents import finish_latent_cache, finished_latent_shards, write_latent_shard
    from walt_bench.data.loader import build_dataset
    from walt_bench.data.shards import assign, plan_shards
    from walt_bench.engine.distributed import all_gather_objects, barrier, init_distributed
    from walt_bench.engine.rundir import versions
    from walt_bench.errors import DataError
    from walt_bench.identity import stage_dir, stage_identity

    split = split or spec.data.split
    ckpt = resolve_checkpoint(spec, checkpoint)
    info = init_distributed(spec.run.device)
    device = info.device
    model = load_tokenizer(spec, str(ckpt)).to(device)
    data_cfg = spec.data.model_copy(
        update={"image_root": None, "image_ratio": 0.0}
    )  # the split itself, no mixing
    base = build_dataset(data_cfg, split=split)
    count = min(limit, len(base)) if limit is not None else len(base)
    path = Path(out) if out else stage_dir(spec, "latents", split=split)
    made_with = tokenizer_provenance(spec, ckpt)
    if (path / "manifest.json").is_file() and not overwrite:
        existing = json.loads((path / "manifest.json").read_text())
        recorded = existing.get("tokenizer") or {}
        if recorded.get("sha256") == made_with["sha256"]:
            if info.is_main:
                print(
                    f"latent cache {path} is up to date (tokenizer {made_with['checkpoint']}); nothing to encode"
                )
            return {**existing, "path": str(path), "reused": True}
        raise DataError(
            f"latent cache {path} is stale: it was made with tokenizer checkpoint {recorded.get('checkpoint')} "
            f"(sha256 {str(recorded.get('sha256'))[:12]}), but the spec's tokenizer is now {made_with['checkpoint']} "
            f"(sha256 {made_with['sha256'][:12]}). Re-encode with --overwrite."
        )
    if count == 0:
        raise DataError(f"no latents to write to {path}: split {split} of {spec.data.dataset} has no clips")
    identity = stage_identity(spec.to_dict(), "latents", split=split)
    tmp = path.with_name(path.name + ".tmp")
    plan = plan_shards(count, spec.tokenizer.cache_shard_size)
    barrier(info)  # every rank has looked at the cache before rank 0 touches the work folder
    if info.is_main:
        _prepare_work_folder(tmp, identity, made_with["sha256"], plan, overwrite=overwrite)
        todo = [k for k in range(len(plan)) if k not in finished_latent_shards(tmp, plan)]
        if len(todo) < len(plan):
            print(
                f"resuming the encode of {path}: {len(plan) - len(todo)} of {len(plan)} shards already written"
            )
    todo = all_gather_objects(todo if info.is_main else None, info)[0]
    mine = assign(todo, info.rank, info.world_size)

    unreadable: list[dict[str, str]] = []  # this rank's, for the fraction check
    # each shard is read in the same batches by whichever rank writes it: latents and stats do not depend on
    # the number of processes
    with tqdm(
        total=sum(len(plan[k]) for k in mine),
        desc=f"encode {split}",
        unit="clip",
        disable=not (progress and info.is_main),
    ) as bar:
        for k in mine:
            loader = DataLoader(
                ReadableOnly(base, plan[k]),
                batch_size=batch_size,
                shuffle=False,
                collate_fn=collate_readable,
                num_workers=spec.data.num_workers,
            )
            bad: list[dict[str, str]] = []

            def batches(loader=loader, bad=bad):
                for batch in loader:
                    for item in batch["unreadable"]:
                        bad.append(item)
                        print(
                            f"warning: skipping unreadable file {item['path']}: {item['reason']}",
                            file=sys.stderr,
                        )
                        if len(unreadable) + len(bad) > spec.data.max_unreadable_fraction * count:
                            raise DataError(
                                f"{len(unreadable) + len(bad)} of the {count} clips of {split} are unreadable, more "
                                f"than data.max_unreadable_fraction={spec.data.max_unreadable_fraction} (last: "
                                f"{item['path']}); the cache was not finished. Run `walt-bench data check --spec "
                                "FILE` to list them all."
                            )
                    bar.update(len(batch["index"]) + len(batch["unreadable"]))
                    if not len(batch["index"]):
                        continue
                    with torch.no_grad():
                        z = model.encode(batch["video"].to(device)).float().cpu()
                    yield {"latent": z, **{key: batch[key] for key in ("label", "is_image", "index")}}

            write_latent_shard(tmp, k, plan[k], batches(), skipped=lambda bad=bad: len(bad), unreadable=bad)
            unreadable.extend(bad)

    barrier(info)
    manifest = None
    if info.is_main:
        metadata = {
            "identity": identity,
            "tokenizer": made_with,
            "spec_hash": spec.hash,
            "dataset": spec.data.dataset,
            "root": spec.data.root,
            "split": split,
            "pixel_shape": [spec.data.num_frames, 3, spec.data.height, spec.data.width],
            "world_size": info.world_size,
            "command": " ".join(["walt-bench", *sys.argv[1:]]) if sys.argv else "walt-bench tokenizer encode",
            "versions": versions(),
        }
        manifest = finish_latent_cache(tmp, path, plan, metadata=metadata)
    manifest = all_gather_objects(manifest, info)[0]
    return {**manifest, "path": str(path)}


def _prepare_work_folder(tmp: Path, identity: str, tokenizer_sha: str, plan, *, overwrite: bool) -> None:
    """``DIR.tmp`` ready for this encode: kept (resume) when it holds shards of the same cache identity,
    tokenizer and shard plan, else emptied."""
    import shutil

    want = {
        "identity": identity,
        "tokenizer_sha256": tokenizer_sha,
        "count": plan[-1].stop,
        "shard_size": len(plan[0]),
    }
    plan_file = tmp / "plan.json"
    recorded = json.loads(plan_file.read_text()) if plan_file.is_file() else None
    if overwrite or recorded != want:
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(want, indent=2))
