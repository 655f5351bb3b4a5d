"""``walt-bench tokenizer encode``: a dataset split -> a latent cache (``walt_bench.data.latents``) + stats.

Clips are read in dataset order with the spec's data settings (use ``data.clip_sampling=center`` for one fixed
clip per video), encoded with the trained tokenizer (posterior mean, fp32) and written in shards of
``tokenizer.cache_shard_size``, at ``<run.out_dir>/latents-<identity>`` (or ``tokenizer.cache_dir``). The manifest
records its identity, the tokenizer it was made with (identity, checkpoint path and full SHA-256, step), the
split, the counts, the normalisation stats and the versions: the trainer checks it, and a cache can always be
traced to what made it.
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
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    from walt_bench.data.latents import write_latent_cache
    from walt_bench.data.loader import build_dataset, collate
    from walt_bench.engine.distributed import resolve_device
    from walt_bench.engine.rundir import versions
    from walt_bench.errors import DataError
    from walt_bench.identity import stage_dir, stage_identity

    split = split or spec.data.split
    ckpt = resolve_checkpoint(spec, checkpoint)
    device = resolve_device(spec.run.device)
    model = load_tokenizer(spec, str(ckpt)).to(device)
    data_cfg = spec.data.model_copy(
        update={"image_root": None, "image_ratio": 0.0}
    )  # the split itself, no mixing
    dataset = build_dataset(data_cfg, split=split)
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=spec.data.num_workers
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

    def batches():
        with tqdm(total=len(dataset), desc=f"encode {split}", unit="clip", disable=not progress) as bar:
            for batch in loader:
                with torch.no_grad():
                    z = model.encode(batch["video"].to(device)).float().cpu()
                bar.update(len(z))
                yield {
                    "latent": z,
                    "label": batch["label"],
                    "is_image": batch["is_image"],
                    "index": batch["index"],
                }

    base = dataset.dataset if isinstance(dataset, Subset) else dataset
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
    manifest["num_skipped"] = int(getattr(base, "num_skipped", 0))  # known only after reading every clip
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return {**manifest, "path": str(path)}
