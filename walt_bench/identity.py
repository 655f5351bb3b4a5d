"""Stage identities: every stage's output lives at a place named by a hash of exactly what can change it.

The chain is data -> tokenizer -> latent cache -> diffusion run -> samples -> metrics. Each stage's identity is
the SHA-256 (12 hex digits) of its name, the values of its own fields (:data:`STAGE_FIELDS`, dotted spec
paths; a section name stands for the whole section) and its upstream stage's identity. Nothing else enters:
not logging or checkpoint cadence, device, compile, loader workers, output folders, run names or prose. So a
sampling-only override (``diffusion.sample_steps=10``) finds the trained run, every spec that trains the same
tokenizer finds the same tokenizer, and a study trial reuses what it shares with the others.

| stage | identity = hash of | directory |
|---|---|---|
| tokenizer | data it trains on + ``tokenizer.*`` + seed | ``<out_dir>/tokenizer-<id>`` |
| latents | tokenizer + the data that select/shape the encoded clips | ``tokenizer.cache_dir`` or ``<out_dir>/latents-<id>`` |
| diffusion | latents (or, encoding on the fly, tokenizer + data) + ``model.*`` + training ``diffusion.*`` + ``train.*`` | ``<out_dir>/diffusion-<id>`` |
| samples | diffusion + checkpoint step + sampling ``diffusion.*`` + seed + count | ``<out_dir>/samples-<id>`` |
| metrics | samples + ``eval.*`` | ``<samples dir>/metrics-<id>.json`` |

``train.steps`` is part of a trainer's identity unless its schedule is constant: with a cosine schedule a longer
run is another trajectory, not a continuation. What a stage *was made from* is recorded in its outputs
(provenance: the cache's manifest names its tokenizer checkpoint and SHA-256, a diffusion checkpoint names its
cache and tokenizer); re-deriving an upstream path from the current spec is only a lookup hint.

    ids = stage_identities(spec)              # {"tokenizer": "3f1c…", "latents": …, "diffusion": …}
    stage_dir(spec, "diffusion")              # Path("runs/diffusion-9a0b1c2d3e4f")
    identity_fields(spec.to_dict(), "diffusion")   # {"model.size": "tiny", …} (for mismatch listings)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Data fields that decide which pixels a trainer sees (not num_classes: the tokenizer ignores labels).
DATA_TRAINED_ON = (
    "data.dataset",
    "data.root",
    "data.annotations",
    "data.split",
    "data.fold",
    "data.num_frames",
    "data.frame_stride",
    "data.clip_sampling",
    "data.height",
    "data.width",
    "data.image_root",
    "data.image_ratio",
)
# Data fields that select and shape the clips `tokenizer encode` writes (it reads the split alone, no images).
DATA_ENCODED = DATA_TRAINED_ON[:-2]

# Fields of a TrainConfig that cannot change the trained weights.
TRAIN_NOT_IN_IDENTITY = (
    "log_every",
    "ckpt_every",
    "keep_last",
    "compile",
    "activation_checkpointing",
    "parallel",
    "find_unused_parameters",
    "max_bad_steps",  # a guard that stops a run: raising it lets a stopped run resume in the same folder
)
DIFFUSION_SAMPLING = (
    "diffusion.sample_steps",
    "diffusion.timestep_spacing",
    "diffusion.eta",
    "diffusion.guidance_scale",
    "diffusion.sample_context_frames",
    "diffusion.sample_chunks",
    "diffusion.ar_context_frames",
    "diffusion.sample_noise_aug",
)

# Each stage's own fields; a section name means the whole section minus EXCLUDED.
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "tokenizer": (*DATA_TRAINED_ON, "tokenizer", "run.seed"),
    "latents": (*DATA_ENCODED, "tokenizer.checkpoint"),
    "diffusion": ("data.num_classes", "model", "diffusion", "train", "run.seed"),
    "samples": DIFFUSION_SAMPLING,
    "metrics": ("eval",),
}
UPSTREAM = {"tokenizer": None, "latents": "tokenizer", "diffusion": "latents", "samples": "diffusion"}
STAGES = ("tokenizer", "latents", "diffusion", "samples", "metrics")

EXCLUDED = (
    # the tokenizer's downstream settings (files it is read from, how it is evaluated and cached)
    "tokenizer.checkpoint",
    "tokenizer.cache_dir",
    "tokenizer.cache_shard_size",
    "tokenizer.eval_split",
    "tokenizer.eval_clips",
    *(f"tokenizer.train.{f}" for f in TRAIN_NOT_IN_IDENTITY),
    *(f"train.{f}" for f in TRAIN_NOT_IN_IDENTITY),
    *DIFFUSION_SAMPLING,
    # where reference statistics are cached and how many clips go through the extractor at once
    "eval.cache_dir",
    "eval.batch_size",
)


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}", out)
    else:
        out[prefix] = value


def _excluded(path: str) -> bool:
    return any(path == ex or path.startswith(ex + ".") for ex in EXCLUDED)


def uses_cache(spec_dict: Mapping[str, Any]) -> bool:
    """Whether the diffusion trainer reads a latent cache (else it encodes clips on the fly)."""
    return _get(spec_dict, "diffusion.latent_source") == "cache"


def upstream_of(stage: str, spec_dict: Mapping[str, Any]) -> str | None:
    """The stage whose identity ``stage`` builds on (diffusion without a cache builds on the tokenizer)."""
    if stage == "diffusion" and not uses_cache(spec_dict):
        return "tokenizer"
    return UPSTREAM.get(stage)


def _own_fields(spec_dict: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """The stage's own fields, flattened; sections lose their :data:`EXCLUDED` members, named leaves stay."""
    paths = STAGE_FIELDS[stage]
    if stage == "diffusion" and not uses_cache(spec_dict):  # encodes on the fly: sees the data itself
        paths = (*paths, *DATA_TRAINED_ON, "tokenizer.checkpoint")
    out: dict[str, Any] = {}
    for path in paths:
        value = _get(spec_dict, path)
        if not isinstance(value, Mapping):
            out[path] = value
            continue
        section: dict[str, Any] = {}
        _flatten(value, path, section)
        out.update({k: v for k, v in section.items() if not _excluded(k)})
    # A constant-LR run of N steps is the first N steps of a longer one: its length is not its identity.
    for prefix in {"tokenizer": ("tokenizer.train",), "diffusion": ("train",)}.get(stage, ()):
        if out.get(f"{prefix}.lr_schedule") == "constant":
            out.pop(f"{prefix}.steps", None)
    return out


def identity_fields(spec_dict: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """Every dotted field (own and upstream) that determines ``stage``'s output: the list a mismatch names."""
    up = upstream_of(stage, spec_dict)
    return {**(identity_fields(spec_dict, up) if up else {}), **_own_fields(spec_dict, stage)}


def digest(obj: Any) -> str:
    """12 hex digits of the SHA-256 of ``obj``'s canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def stage_identity(spec_dict: Mapping[str, Any], stage: str, *, split: str | None = None) -> str:
    """Identity of ``tokenizer``, ``latents`` or ``diffusion``; ``split`` names another split to encode than
    ``data.split`` (latents only: the tokenizer stays the one trained on ``data.split``). Samples and metrics
    depend on values that are not spec fields: use :func:`samples_identity` and :func:`metrics_identity`."""
    if stage not in UPSTREAM or stage == "samples":
        raise ValueError(f"no spec-only identity for stage {stage!r}; see samples_identity/metrics_identity")
    up = upstream_of(stage, spec_dict)
    own = _own_fields(spec_dict, stage)
    if split is not None and stage == "latents":
        own["data.split"] = split
    return digest({"stage": stage, "fields": own, "upstream": stage_identity(spec_dict, up) if up else None})


def samples_identity(
    diffusion_id: str, step: int, spec_dict: Mapping[str, Any], *, seed: int, num: int, **extra: Any
) -> str:
    """Identity of samples: the diffusion run, its checkpoint step, the sampling fields, the seed and the count
    (``extra``: anything else that changes them, e.g. the context split or super-resolution stages)."""
    fields = {path: _get(spec_dict, path) for path in DIFFUSION_SAMPLING}
    record = {"stage": "samples", "upstream": diffusion_id, "step": int(step), "fields": fields}
    return digest({**record, "seed": int(seed), "num": int(num), **extra})


def metrics_identity(samples_id: str, spec_dict: Mapping[str, Any]) -> str:
    """Identity of a metrics file: the samples it judged + ``eval.*`` (less cache folder and batch size)."""
    return digest({"stage": "metrics", "upstream": samples_id, "fields": _own_fields(spec_dict, "metrics")})


def stage_identities(spec) -> dict[str, str]:
    """``{"tokenizer", "latents", "diffusion"}`` identities of a spec (an ``ExperimentSpec`` or its dict)."""
    d = _as_dict(spec)
    return {stage: stage_identity(d, stage) for stage in ("tokenizer", "latents", "diffusion")}


def _as_dict(spec) -> Mapping[str, Any]:
    return spec if isinstance(spec, Mapping) else spec.to_dict()


# -- directories -----------------------------------------------------------------------------------
def stage_dir(spec, stage: str, *, split: str | None = None) -> Path:
    """Where ``tokenizer``, ``latents`` or ``diffusion`` of ``spec`` lives (``tokenizer.cache_dir`` wins for
    the latent cache of ``data.split`` when set; ``split``: see :func:`stage_identity`)."""
    d = _as_dict(spec)
    if stage == "latents" and _get(d, "tokenizer.cache_dir") and split in (None, _get(d, "data.split")):
        return Path(_get(d, "tokenizer.cache_dir"))
    return Path(_get(d, "run.out_dir")) / f"{stage}-{stage_identity(d, stage, split=split)}"


def samples_dir(spec, samples_id: str) -> Path:
    return Path(_get(_as_dict(spec), "run.out_dir")) / f"samples-{samples_id}"


def metrics_path(samples_folder: str | Path, metrics_id: str) -> Path:
    return Path(samples_folder) / f"metrics-{metrics_id}.json"


def field_diff(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``'path: recorded X, spec Y'`` for every identity field that differs between two field maps."""
    out = []
    for key in sorted(set(recorded) | set(current)):
        a, b = recorded.get(key, "<absent>"), current.get(key, "<absent>")
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            out.append(f"{key}: recorded {a!r}, spec {b!r}")
    return out
