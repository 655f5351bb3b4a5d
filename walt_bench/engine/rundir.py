"""The run directory ``<run.out_dir>/<run.name>-<spec hash>/`` and the files in it.

spec.yaml        the resolved spec (written once by rank 0)
checkpoints/     step_00001000.pt, ... (see engine/checkpoint.py)
metrics.jsonl    one JSON object per logged step: {"step": 10, "loss": ..., "lr": ..., ...}
summary.json     final step and loss, best metrics, checkpoint paths, wall time, throughput, spec hash
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def run_dir_for(out_dir: str | Path, name: str, spec_hash: str) -> Path:
    """``<out_dir>/<name>-<spec_hash>``."""
    return Path(out_dir) / f"{name}-{spec_hash}"


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def prepare_run_dir(run_dir: Path, spec_dict: Mapping[str, Any]) -> None:
    """Create ``run_dir/checkpoints`` and write ``spec.yaml`` (rank 0 only)."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".spec.yaml.tmp-{os.getpid()}"
    tmp.write_text(yaml.safe_dump(dict(spec_dict), sort_keys=False))
    os.replace(tmp, run_dir / "spec.yaml")


class MetricsLog:
    """Append-only ``metrics.jsonl``. On resume from step ``k``, lines for steps after ``k`` (logged
    after that checkpoint by the interrupted run) are dropped so that the file has each step once."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            kept = [
                ln
                for ln in path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["step"] <= resume_step
            ]
            path.write_text("".join(ln + "\n" for ln in kept))
        self._file = open(path, "a")  # noqa: SIM115 - closed in close()

    def write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(dict(record), default=float) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def versions() -> dict[str, str]:
    import torch

    import walt_bench

    return {
        "walt_bench": walt_bench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
