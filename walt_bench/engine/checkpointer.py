"""The trainer's checkpointer: saves every part's full state collectively and resumes it exactly.

    ckpt = Checkpointer(run_dir / "checkpoints", info, identity=..., identity_fields=..., spec_dict=...,
                        keep_last=3)
    start, extra, resumed_from = ckpt.resume(states, "auto")      # (0, {}, None) on a fresh start
    ckpt.save(states, step, data_position, extra)                 # collective; rank 0 writes atomically

``resume="auto"`` takes the newest checkpoint that verifies: a truncated, empty or bit-flipped newer one is
moved to ``checkpoints/corrupt/`` with a warning naming it, and the previous one is used. An explicit path that
fails verification is an error (the user asked for that file).

``states`` are the loop's per-part states (``.part.name``, ``.raw``, ``.optimizer``, ``.scheduler``, ``.ema``).
The file format and atomic write are in ``engine/checkpoint.py``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from walt_bench.engine import checkpoint as ckpt_io
from walt_bench.engine.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    derive_seed,
    seed_everything,
)
from walt_bench.errors import CheckpointError


def _sd_options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_model_state(module: nn.Module) -> dict[str, Any]:
    """The unsharded state dict of ``module`` on the CPU (collective under FSDP)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_sd_options(cpu_offload=True))


class Checkpointer:
    def __init__(
        self,
        ckpt_dir: Path,
        info: DistInfo,
        *,
        identity: str,
        identity_fields: Mapping[str, Any] | None,
        spec_dict: Mapping[str, Any],
        keep_last: int,
    ):
        self.dir = Path(ckpt_dir)
        self.info = info
        self.identity = identity
        self.identity_fields = dict(identity_fields or {})
        self.spec_dict = dict(spec_dict)
        self.keep_last = keep_last

    def paths(self) -> list[str]:
        return [str(p) for _, p in ckpt_io.list_checkpoints(self.dir)]

    # -- saving ------------------------------------------------------------------------------------
    def save(
        self, states: Sequence[Any], step: int, data_position: int, extra: Mapping[str, Any]
    ) -> Path | None:
        """Collective: every rank gathers the full state; rank 0 writes atomically and prunes old files."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        parts = {}
        for s in states:
            parts[s.part.name] = {
                "model": full_model_state(s.raw),
                "optimizer": get_optimizer_state_dict(
                    s.raw, s.optimizer, options=_sd_options(cpu_offload=True)
                ),
                "scheduler": s.scheduler.state_dict(),
                "ema": s.ema.state_dict() if s.ema is not None else None,
            }
        rng = all_gather_objects(ckpt_io.capture_rng_state(), self.info)
        path = None
        if self.info.is_main:
            obj = {
                "format": ckpt_io.FORMAT,
                "step": step,
                "data_position": data_position,
                "identity": self.identity,
                "identity_fields": self.identity_fields,
                "spec": self.spec_dict,
                "parts": parts,
                "rng": rng,
                "world_size": self.info.world_size,
                "extra": dict(extra),
            }
            path = ckpt_io.save_checkpoint(obj, ckpt_io.checkpoint_path(self.dir, step))
            ckpt_io.prune_checkpoints(self.dir, self.keep_last)
        barrier(self.info)
        return path

    # -- resuming ----------------------------------------------------------------------------------
    def resume(
        self,
        states: Sequence[Any],
        resume: str,
        seed: int,
        *,
        allow_spec_mismatch: bool = False,
        set_aside_with: Sequence[Path] = (),
    ) -> tuple[int, dict[str, Any], str | None]:
        """Load ``resume`` (``auto``: the newest checkpoint here, ``never``: none, or a path) into ``states`` and
        restore this rank's RNGs; a fresh start seeds them from ``seed``. Returns (step, extra, path or None).
        ``never`` first sets the earlier trajectory aside, with the files in ``set_aside_with`` (its metrics)."""
        if resume == "never" and self.info.is_main:
            self.set_aside(set_aside_with)
        barrier(self.info)
        if resume == "never":
            path, ckpt = None, None
        elif resume == "auto":
            # rank 0 picks the newest checkpoint that verifies (setting corrupt ones aside); the others load it
            path, ckpt = self._newest_good() if self.info.is_main else (None, None)
            chosen = all_gather_objects(None if path is None else str(path), self.info)[0]
            path = Path(chosen) if chosen is not None else None
        else:
            path, ckpt = Path(resume), None
        if path is None:
            seed_everything(derive_seed(seed, self.info.rank))
            return 0, {}, None
        if ckpt is None:
            ckpt = ckpt_io.read_verified(path)
        ckpt = ckpt_io.check_identity(ckpt, path, self.identity, self.identity_fields, allow_spec_mismatch)
        self._load(states, ckpt, path)
        step = int(ckpt["step"])
        if ckpt["world_size"] == self.info.world_size:
            ckpt_io.restore_rng_state(ckpt["rng"][self.info.rank])
        else:
            seed_everything(derive_seed(seed, self.info.rank, step))
        return step, dict(ckpt.get("extra") or {}), str(path)

    def _newest_good(self) -> tuple[Path | None, dict[str, Any] | None]:
        """The newest checkpoint here whose file verifies, read; corrupt newer ones go to ``corrupt/`` with a
        warning. ``(None, None)`` when there is none."""
        for _, path in reversed(ckpt_io.list_checkpoints(self.dir)):
            try:
                ckpt = ckpt_io.read_verified(path)
            except ckpt_io.CorruptCheckpointError as exc:
                dest = self.dir / "corrupt" / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
                dest.parent.mkdir(exist_ok=True)
                path.rename(dest)
                msg = f"{exc} Moved it to {dest} and trying the previous checkpoint."
                print(f"warning: {msg}", file=sys.stderr, flush=True)
                warnings.warn(msg, RuntimeWarning, stacklevel=3)
                continue
            return path, ckpt
        return None, None

    @staticmethod
    def _load(states: Sequence[Any], ckpt: Mapping[str, Any], path: Path) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        for s in states:
            if s.part.name not in ckpt["parts"]:
                raise CheckpointError(
                    f"checkpoint {path} has parts {sorted(ckpt['parts'])}; this trainer needs {s.part.name!r}."
                )
            saved = ckpt["parts"][s.part.name]
            set_model_state_dict(s.raw, saved["model"], options=_sd_options())
            set_optimizer_state_dict(s.raw, s.optimizer, saved["optimizer"], options=_sd_options())
            s.scheduler.load_state_dict(saved["scheduler"])
            if s.ema is not None and saved["ema"] is not None:
                s.ema.load_state_dict(saved["ema"])
            elif s.ema is not None:  # EMA switched on since: start it from the weights
                s.ema.load_state_dict(full_model_state(s.raw))

    def set_aside(self, also: Sequence[Path] = ()) -> Path | None:
        """``resume=never``: move this trajectory's checkpoints (and the files ``also``, e.g. its metrics.jsonl and
        summary.json) to ``checkpoints/replaced-<time>-<pid>/`` so that a later ``resume=auto`` cannot pick them up
        and nothing of the earlier run is lost. Returns that folder, if anything was moved."""
        old = [p for _, p in ckpt_io.list_checkpoints(self.dir)] + [Path(a) for a in also if Path(a).exists()]
        if not old:
            return None
        stem = f"replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        for n in range(1000):  # a fresh folder: never rename over an earlier set-aside run's files
            dest = self.dir / (stem if n == 0 else f"{stem}-{n}")
            try:
                dest.mkdir(parents=True)
                break
            except FileExistsError:
                continue
        for p in old:
            p.rename(dest / p.name)
        return dest
