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
    checksum       {"algorithm": "sha256", "digest": ...} of everything above (:func:`content_digest`)

Writes are atomic: a temporary file ``.step_X.pt.tmp-<pid>`` in the same folder, flush + fsync, ``os.replace``,
fsync of the folder; a crash mid-write leaves the previous checkpoint untouched, and the trainer removes such
orphan temporary files when it next starts (:func:`remove_orphan_temps`). A full disk or an unwritable folder
is a :class:`~walt_bench.errors.StorageError` naming the path (not PyTorch's ``inline_container.cc`` message).

Loading verifies the checksum: a truncated, zero-length or bit-flipped file raises
:class:`CorruptCheckpointError` naming it (the trainer then falls back to the previous checkpoint), never loads
silently. Loading refuses a checkpoint of another identity (naming each differing field) unless
``allow_spec_mismatch=True``.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from walt_bench.errors import CheckpointError, storage_error
from walt_bench.identity import field_diff

FORMAT = "walt_bench.checkpoint/3"
LEGACY_FORMATS = ("walt_bench.checkpoint/2",)  # no checksum: loaded with a warning
_NAME = re.compile(r"^step_(\d+)\.pt$")
_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated, empty, not a torch file or fails its checksum."""


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
    """The step in a ``step_<8 digits>.pt`` file name (None for another name)."""
    m = _NAME.match(Path(path).name)
    return int(m.group(1)) if m else None


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    found = list_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


class _WriteGuard:
    """A file wrapper that remembers the ``OSError`` of a failed write: ``torch.save`` buries it under a
    ``RuntimeError`` from ``inline_container.cc``, and the user needs the real cause (ENOSPC, EROFS, ...)."""

    def __init__(self, f):
        self._f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._f.flush()


def atomic_save(obj: Any, path: str | Path, what: str = "checkpoint") -> Path:
    """``torch.save`` to ``path`` so that the file is either the old one or the complete new one.

    A full disk or an unwritable folder raises :class:`~walt_bench.errors.StorageError` naming ``path``; the
    temporary file is removed and the old file is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    guard = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            guard = _WriteGuard(f)
            torch.save(obj, guard)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        cause = guard.error if guard is not None and guard.error is not None else exc
        friendly = storage_error(cause, path, what)
        if friendly is not None:
            raise friendly from cause
        raise
    return path


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` files in ``folder`` left by a writer that died mid-write (a SIGKILL or a
    power cut during a checkpoint save). Call it only while holding the run directory's lock: then no live
    writer owns such a file. Returns the removed paths."""
    d = Path(folder)
    removed = []
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        if _TEMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


# -- checksums -----------------------------------------------------------------------------------
def _feed(h, x: Any) -> None:
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(x, Mapping):
        h.update(f"D{len(x)}|".encode())
        for k in sorted(x, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, k)
            _feed(h, x[k])
    elif isinstance(x, list | tuple):
        h.update(f"{'L' if isinstance(x, list) else 'U'}{len(x)}|".encode())
        for v in x:
            _feed(h, v)
    elif isinstance(x, str):
        b = x.encode("utf-8", "surrogatepass")
        h.update(f"S{len(b)}|".encode() + b)
    elif isinstance(x, bytes):
        h.update(f"B{len(x)}|".encode() + x)
    elif x is None or isinstance(x, bool):
        h.update(f"{x!r}|".encode())
    elif isinstance(x, int):
        h.update(f"I{x}|".encode())
    elif isinstance(x, float):
        h.update(f"F{x.hex()}|".encode())
    elif isinstance(x, torch.dtype | torch.device | torch.Size):
        h.update(f"O{x!r}|".encode())
    else:
        raise TypeError(f"cannot checksum a {type(x).__name__} in a checkpoint")


def content_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of a checkpoint dict's content (every tensor's dtype, shape and bytes, every key and value;
    the ``checksum`` entry itself excluded). Independent of dict order and of the file's zip layout."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != "checksum"})
    return h.hexdigest()


def save_checkpoint(obj: Mapping[str, Any], path: str | Path) -> Path:
    """:func:`atomic_save` of ``obj`` with its ``checksum`` added."""
    obj = dict(obj)
    obj["checksum"] = {"algorithm": "sha256", "digest": content_digest(obj)}
    return atomic_save(obj, path)


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
    return check_identity(read_verified(path), path, identity, identity_fields, allow_spec_mismatch)


def check_identity(
    ckpt: dict[str, Any],
    path: str | Path,
    identity: str | None,
    identity_fields: dict[str, Any] | None,
    allow_spec_mismatch: bool,
) -> dict[str, Any]:
    """``ckpt`` if it belongs to run ``identity`` (or ``allow_spec_mismatch``); see :func:`load_checkpoint`."""
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


def read_verified(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and verify its checksum (no identity check).

    Raises :class:`CheckpointError` for a missing path or a directory, :class:`CorruptCheckpointError` for a
    file that is truncated, empty, not a torch file, holds unsafe (non-tensor) objects or fails its checksum."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path) or latest_checkpoint(path / "checkpoints")
        hint = f" (its newest checkpoint is {found})" if found else ""
        raise CheckpointError(f"checkpoint {path} is a directory{hint}; give the path of a step_*.pt file.")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist. Give the path of an existing step_*.pt file, or resume "
            "'auto' (newest in the run directory) or 'never' (start fresh)."
        )
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(f"checkpoint {path} is empty (0 bytes): a write that never finished.")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(b"PK\x03\x04"):  # torch.save's zip format, which every walt_bench checkpoint uses
        looks = "a text file (a spec or a note?)" if _is_text(head) else "not a PyTorch zip file"
        raise CorruptCheckpointError(
            f"checkpoint {path} is {looks}, not a walt_bench checkpoint (it starts with {head[:16]!r}). Give the "
            "path of a step_*.pt file from a run's checkpoints/ folder."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, flipped, not a torch file, or unsafe content
        text = str(exc).strip()
        if "Weights only load failed" in text:  # never repeat torch's advice to load with weights_only=False
            first = text.split("Please file an issue")[0].splitlines()
            detail = next((ln.strip() for ln in first if ln.strip().startswith("WeightsUnpickler")), "")
            detail = detail.split(". Please")[0]
            reason = (
                "it holds objects other than tensors and plain data, refused because unpickling them can run "
                f"code{': ' + detail[:200] if detail else ''}"
            )
        else:
            reason = f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:200]}"
        raise CorruptCheckpointError(
            f"checkpoint {path} is unreadable ({reason}): it is truncated, damaged or not a walt_bench "
            "checkpoint. Delete or move it to resume from the previous checkpoint in the same folder, or give "
            "another checkpoint path."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (FORMAT, *LEGACY_FORMATS):
        raise CorruptCheckpointError(f"{path} is not a walt_bench checkpoint (expected format {FORMAT!r}).")
    if ckpt["format"] in LEGACY_FORMATS:
        warnings.warn(
            f"checkpoint {path} ({ckpt['format']}) has no checksum; it is loaded unverified", stacklevel=3
        )
        return ckpt
    recorded = ckpt.get("checksum")
    try:
        actual = content_digest(ckpt)
    except TypeError as exc:
        actual = f"(uncomputable: {exc})"
    if not isinstance(recorded, dict) or recorded.get("digest") != actual:
        raise CorruptCheckpointError(
            f"checkpoint {path} fails its checksum (recorded {str((recorded or {}).get('digest'))[:16]}..., content "
            f"{actual[:16]}...): its bytes changed after it was written (disk or copy error). It is not loaded. "
            "Delete or move it to resume from the previous checkpoint in the same folder."
        )
    return ckpt


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= 32 or c in (9, 10, 13) for c in head)


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
