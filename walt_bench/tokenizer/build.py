"""Build and load the tokenizer: where its training run lives and how a checkpoint becomes a model.

The tokenizer's run directory is ``<run.out_dir>/tokenizer-<identity>``, where the identity covers only what
determines the trained weights (the data it trains on, the ``tokenizer`` section without its file, cache and
evaluation fields, and the seed; ``walt_bench/identity.py``). Every spec that shares these finds the same
tokenizer when ``tokenizer.checkpoint`` is not set.

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


def tokenizer_hash(spec) -> str:
    """The tokenizer stage's identity (12 hex digits)."""
    from walt_bench.identity import stage_identity

    return stage_identity(spec.to_dict(), "tokenizer")


def tokenizer_run_dir(spec) -> Path:
    """``<run.out_dir>/tokenizer-<identity>``, where ``tokenizer train`` writes."""
    from walt_bench.identity import stage_dir

    return stage_dir(spec, "tokenizer")


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
