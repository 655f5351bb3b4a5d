"""Atomic, self-describing checkpoints and their loading rules.

A checkpoint ``<run dir>/checkpoints/step_00001000.pt`` is one ``torch.save`` dict that loads with
``torch.load(weights_only=True)`` (only tensors, numbers, strings, lists and dicts inside)::

    format         "walt_bench.checkpoint/2"
    step           optimizer steps completed
    data_position  loader batches consumed per rank (= step * grad_accum_steps)
    identity       the run's stage identity (walt_bench/identity.py); identity_fields: the dotted fields behind it
    spec           the resolved spec dict of the run that wrote it
    parts          {name: {"model", "ema" (or None), "optimizer", "scheduler"}}  (full, unsharded tensors)
    rng            one dict per rank: python, numpy, torch CPU and (current device's) CUDA RNG states
    (no grad-scaler state: bf16 autocast needs no loss scaling, so the engine has no GradScaler)
    world_size     ranks that wrote it (the RNG states are restored only at the same world size)
    extra          a small dict from the trainer (provenance of its inputs, best metrics, MLflow run id, ...)

Writes are atomic: a temporary file in the same folder, flush + fsync, ``os.replace``, fsync of the
folder; a crash mid-write leaves the previous checkpoint untouched. Loading refuses a checkpoint of another
identity (naming each differing field) unless ``allow_spec_mismatch=True``.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.errors import CheckpointError
from walt_bench.identity import field_diff

FORMAT = "walt_bench.checkpoint/2"
_NAME = re.compile(r"^step_(\d+)\.pt$")


# -- files ---------------------------------------------------------------------------------------
def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:08d}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(step, path), ...]`` of finished checkpoints in ``ckpt_dir``, oldest first (temp files ignored)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def checkpoint_step(path: str | Path) -> int | None:
    """The step in a ``step_XXXXXXXX.pt`` file name (None for another name)."""
    m = _NAME.match(Path(path).name)
    return int(m.group(1)) if m else None


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    found = list_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` so that the file is either the old one or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune_checkpoints(ckpt_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints; returns the deleted paths."""
    found = list_checkpoints(ckpt_dir)
    doomed = [p for _, p in found[: max(0, len(found) - keep_last)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


# -- RNG state (as tensors / lists so that weights_only loading works) -----------------------------
def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and CUDA generator states of this process."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [int(version), [int(x) for x in internal], gauss],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        # Only this process's current device: get_rng_state_all() would open a context on every GPU.
        "cuda": [torch.cuda.get_rng_state()]
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"][0])


# -- loading -------------------------------------------------------------------------------------
def load_checkpoint(
    path: str | Path,
    *,
    identity: str | None = None,
    identity_fields: dict[str, Any] | None = None,
    allow_spec_mismatch: bool = False,
) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True`` and check that it belongs to this run.

    Raises :class:`CheckpointError` when the file is missing or unreadable, or when its identity differs from
    ``identity`` (listing the differing ``identity_fields``) and ``allow_spec_mismatch`` is false.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist. Give the path of an existing step_*.pt file, or resume "
            "'auto' (newest in the run directory) or 'never' (start fresh)."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or unsafe content
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}). Delete it to resume "
            "from the previous checkpoint in the same folder, or give another checkpoint path."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a walt_bench checkpoint (expected format {FORMAT!r}).")
    if identity is not None and ckpt["identity"] != identity:
        diffs = field_diff(ckpt.get("identity_fields") or {}, identity_fields or {})
        listing = (
            "\n".join(f"  - {d}" for d in diffs) or "  (no field differs; the identity definition changed)"
        )
        msg = (
            f"checkpoint {path} belongs to run {ckpt['identity']}, but this spec's run is {identity}. "
            f"Differing fields:\n{listing}"
        )
        if not allow_spec_mismatch:
            raise CheckpointError(
                msg + "\nUse the matching spec, or pass --allow-spec-mismatch to load it anyway."
            )
        warnings.warn(msg + "\nLoading anyway (--allow-spec-mismatch).", stacklevel=2)
    return ckpt


def checkpoint_spec(path: str | Path) -> dict[str, Any]:
    """The resolved spec dict stored in a checkpoint (e.g. to rebuild its model for sampling)."""
    return load_checkpoint(path)["spec"]


def load_weights(
    path: str | Path,
    module: torch.nn.Module,
    part: str | None = None,
    use_ema: bool = True,
    ckpt: dict[str, Any] | None = None,
) -> str:
    """Load one part's weights into ``module``: its EMA when present and ``use_ema``, else the raw weights.

    ``part`` defaults to the checkpoint's only (or first) part; ``ckpt`` is the already loaded checkpoint of
    ``path``, if the caller has it. Returns ``"ema"`` or ``"model"``.
    """
    ckpt = ckpt if ckpt is not None else load_checkpoint(path)
    parts = ckpt["parts"]
    name = part if part is not None else next(iter(parts))
    if name not in parts:
        raise CheckpointError(f"checkpoint {path} has parts {sorted(parts)}, not {name!r}.")
    which = "ema" if use_ema and parts[name].get("ema") is not None else "model"
    state = dict(parts[name]["model"])
    if which == "ema":
        state.update(parts[name]["ema"])  # the EMA holds parameters; buffers come from the model
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} part {name!r} does not fit this model ({str(exc)[:300]}). "
            "Build the model from the checkpoint's own spec (engine.checkpoint.checkpoint_spec)."
        ) from exc
    return which
