"""``walt-bench tokenizer encode``: a dataset split -> a latent cache (``walt_bench.data.latents``) + stats.

Clips are read in dataset order with the spec's data settings (use ``data.clip_sampling=center`` for one fixed
clip per video), encoded with the trained tokenizer (posterior mean, fp32) and written in shards of
``tokenizer.cache_shard_size``, at ``<run.out_dir>/latents-<identity>`` (or ``tokenizer.cache_dir``). The manifest
records its identity, the tokenizer it was made with (identity, checkpoint path and full SHA-256, step), the
split, the counts, the normalisation stats and the versions: the trainer checks it, and a cache can always be
traced to what made it.

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
    """Encode ``split`` (default ``data.split``) into a latent cache; returns its manifest (+ ``"path"``)."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from walt_bench.data.latents import write_latent_cache
    from walt_bench.data.loader import build_dataset
    from walt_bench.engine.distributed import resolve_device
    from walt_bench.engine.rundir import versions, write_atomic
    from walt_bench.errors import DataError
    from walt_bench.identity import stage_dir, stage_identity

    split = split or spec.data.split
    ckpt = resolve_checkpoint(spec, checkpoint)
    device = resolve_device(spec.run.device)
    model = load_tokenizer(spec, str(ckpt)).to(device)
    data_cfg = spec.data.model_copy(
        update={"image_root": None, "image_ratio": 0.0}
    )  # the split itself, no mixing
    base = build_dataset(data_cfg, split=split)
    dataset = ReadableOnly(base, range(min(limit, len(base)) if limit is not None else len(base)))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_readable,
        num_workers=spec.data.num_workers,
    )
    path = Path(out) if out else stage_dir(spec, "latents", split=split)
    made_with = tokenizer_provenance(spec, ckpt)
    if (path / "manifest.json").is_file() and not overwrite:
        existing = json.loads((path / "manifest.json").read_text())
        recorded = existing.get("tokenizer") or {}
        if recorded.get("sha256") == made_with["sha256"]:
            print(
                f"latent cache {path} is up to date (tokenizer {made_with['checkpoint']}); nothing to encode"
            )
            return {**existing, "path": str(path), "reused": True}
        raise DataError(
            f"latent cache {path} is stale: it was made with tokenizer checkpoint {recorded.get('checkpoint')} "
            f"(sha256 {str(recorded.get('sha256'))[:12]}), but the spec's tokenizer is now {made_with['checkpoint']} "
            f"(sha256 {made_with['sha256'][:12]}). Re-encode with --overwrite."
        )

    unreadable: list[dict[str, str]] = []

    def batches():
        with tqdm(total=len(dataset), desc=f"encode {split}", unit="clip", disable=not progress) as bar:
            for batch in loader:
                for bad in batch["unreadable"]:
                    unreadable.append(bad)
                    print(
                        f"warning: skipping unreadable file {bad['path']}: {bad['reason']}", file=sys.stderr
                    )
                    if len(unreadable) > spec.data.max_unreadable_fraction * len(dataset):
                        raise DataError(
                            f"{len(unreadable)} of the {len(dataset)} clips of {split} are unreadable, more than "
                            f"data.max_unreadable_fraction={spec.data.max_unreadable_fraction} (last: {bad['path']}); "
                            "nothing was written. Run `walt-bench data check --spec FILE` to list them all."
                        )
                bar.update(len(batch["index"]) + len(batch["unreadable"]))
                if not len(batch["index"]):
                    continue
                with torch.no_grad():
                    z = model.encode(batch["video"].to(device)).float().cpu()
                yield {
                    "latent": z,
                    "label": batch["label"],
                    "is_image": batch["is_image"],
                    "index": batch["index"],
                }

    metadata = {
        "identity": stage_identity(spec.to_dict(), "latents", split=split),
        "tokenizer": made_with,
        "spec_hash": spec.hash,
        "dataset": spec.data.dataset,
        "root": spec.data.root,
        "split": split,
        "pixel_shape": [spec.data.num_frames, 3, spec.data.height, spec.data.width],
        "command": " ".join(["walt-bench", *sys.argv[1:]]) if sys.argv else "walt-bench tokenizer encode",
        "versions": versions(),
    }
    manifest = write_latent_cache(
        path,
        batches(),
        shard_size=spec.tokenizer.cache_shard_size,
        metadata=metadata,
        overwrite=overwrite,
    )
    manifest["num_skipped"] = len(unreadable)  # known only after reading every clip
    manifest["unreadable"] = unreadable
    write_atomic(path / "manifest.json", json.dumps(manifest, indent=2).encode(), "the latent cache manifest")
    return {**manifest, "path": str(path)}
