"""Build and load the tokenizer: where its training run lives and how a checkpoint becomes a model.

The tokenizer's run directory is ``<run.out_dir>/<run.name>-tokenizer-<tokenizer hash>``, where the tokenizer
hash covers only what determines the trained weights (the ``data`` section, the ``tokenizer`` section without
its file and evaluation fields, and the seed). A diffusion spec that shares these finds the same tokenizer
(also under another ``run.name``) when ``tokenizer.checkpoint`` is not set.

Usage::

    tok = load_tokenizer(spec)                     # tokenizer.checkpoint, else the newest one of its run
    z = tok.encode(video)                          # (B, T, 3, H, W) -> (B, t, c, h, w)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from walt_bench.errors import CheckpointError
from walt_bench.tokenizer.model import CausalAutoencoder

PART = "autoencoder"  # checkpoint part holding the autoencoder's weights
DISCRIMINATOR_PART = "discriminator"
ARCHITECTURE_FIELDS = (
    "f_s",
    "f_t",
    "latent_channels",
    "channels",
    "channel_multipliers",
    "num_res_blocks",
    "num_groups",
    "causal_padding",
    "latent_kind",
)
NOT_IN_IDENTITY = ("checkpoint", "cache_dir", "cache_shard_size", "eval_split", "eval_clips")


def tokenizer_identity(spec) -> dict[str, Any]:
    """The part of ``spec`` that determines the trained tokenizer (see the module docstring)."""
    tok = spec.tokenizer.model_dump(mode="json", exclude=set(NOT_IN_IDENTITY))
    return {"data": spec.data.model_dump(mode="json"), "tokenizer": tok, "seed": spec.run.seed}


def tokenizer_hash(spec) -> str:
    """12 hex characters identifying :func:`tokenizer_identity` (canonical, like ``spec.hash``)."""
    from walt_bench.spec import spec_hash

    return spec_hash(tokenizer_identity(spec))


def tokenizer_run_name(spec) -> str:
    return f"{spec.run.name}-tokenizer"


def tokenizer_run_dir(spec) -> Path:
    """``<run.out_dir>/<run.name>-tokenizer-<tokenizer hash>``, where ``tokenizer train`` writes."""
    return Path(spec.run.out_dir) / f"{tokenizer_run_name(spec)}-{tokenizer_hash(spec)}"


def resolve_checkpoint(spec, checkpoint: str | None = None) -> Path:
    """``checkpoint``, else ``tokenizer.checkpoint``, else the newest checkpoint of the tokenizer's run."""
    from walt_bench.engine.checkpoint import latest_checkpoint

    path = checkpoint or spec.tokenizer.checkpoint
    if path is not None:
        if not Path(path).is_file():
            raise CheckpointError(
                f"tokenizer checkpoint {path} does not exist. Train one with `walt-bench tokenizer train --spec "
                "FILE` or set tokenizer.checkpoint to an existing step_*.pt file."
            )
        return Path(path)
    run_dir = tokenizer_run_dir(spec)
    found = latest_checkpoint(run_dir / "checkpoints")
    if found is None:  # a run of the same tokenizer under another run.name (e.g. the tokenizer's own spec)
        others = sorted(Path(spec.run.out_dir).glob(f"*-tokenizer-{tokenizer_hash(spec)}/checkpoints"))
        candidates = [c for c in (latest_checkpoint(d) for d in others) if c is not None]
        found = max(candidates, key=lambda c: c.stat().st_mtime) if candidates else None
    if found is None:
        raise CheckpointError(
            f"no tokenizer checkpoint: tokenizer.checkpoint is not set and {run_dir}/checkpoints holds none. "
            "Train one with `walt-bench tokenizer train --spec FILE`, or set tokenizer.checkpoint=PATH."
        )
    return found


def _architecture_mismatch(spec, ckpt_spec: dict[str, Any]) -> list[str]:
    saved = ckpt_spec.get("tokenizer", {})
    ours = spec.tokenizer.model_dump(mode="json")
    return [
        f"tokenizer.{k}: checkpoint {saved[k]!r}, spec {ours[k]!r}"
        for k in ARCHITECTURE_FIELDS
        if k in saved and saved[k] != ours[k]
    ]


def load_tokenizer(spec, checkpoint: str | None = None, *, use_ema: bool = True) -> CausalAutoencoder:
    """The trained autoencoder of ``spec`` in eval mode on the CPU (EMA weights when the run kept them).

    Raises :class:`CheckpointError` when no checkpoint is found, the file is unreadable, or its tokenizer
    architecture differs from ``spec.tokenizer`` (naming the differing fields).
    """
    from walt_bench.engine.checkpoint import load_checkpoint, load_weights

    path = resolve_checkpoint(spec, checkpoint)
    ckpt = load_checkpoint(path)
    problems = _architecture_mismatch(spec, ckpt.get("spec", {}))
    if problems:
        raise CheckpointError(
            f"tokenizer checkpoint {path} has another architecture than the spec:\n  - "
            + "\n  - ".join(problems)
            + "\nUse the tokenizer fields the checkpoint was trained with, or another checkpoint."
        )
    if PART not in ckpt["parts"]:
        raise CheckpointError(f"{path} has parts {sorted(ckpt['parts'])}, not a tokenizer part {PART!r}")
    del ckpt
    model = CausalAutoencoder(spec.tokenizer)
    load_weights(path, model, part=PART, use_ema=use_ema)
    model.requires_grad_(False)
    return model.eval()


def build_discriminator(spec):
    """The 3D StyleGAN discriminator for ``spec.data``'s frame size, wrapped with its LeCAM anchors."""
    from walt_bench.errors import UserError
    from walt_bench.tokenizer.discriminator import StyleGANDiscriminator3D
    from walt_bench.tokenizer.objective import Critic

    tok, n = spec.tokenizer, len(spec.tokenizer.discriminator_multipliers)
    h, w = spec.data.height, spec.data.width
    if h % 2**n or w % 2**n:
        raise UserError(
            f"data.height x width = {h}x{w} is not divisible by 2**{n}, the downsampling of the "
            f"{n} discriminator blocks (tokenizer.discriminator_multipliers={tok.discriminator_multipliers}); "
            "use fewer multipliers"
        )
    net = StyleGANDiscriminator3D((h, w), tok.discriminator_channels, tuple(tok.discriminator_multipliers))
    return Critic(net, tok.lecam_ema_decay)


def to_device(model: torch.nn.Module, device: str = "auto") -> torch.nn.Module:
    from walt_bench.engine.distributed import resolve_device

    return model.to(resolve_device(device))
