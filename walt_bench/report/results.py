"""Result files: one JSON per table cell, the contract between the pipelines and ``walt-bench report``.

Whoever produces a number for a table (``walt-bench demo``, a DVC stage, a sweep trial) calls
:func:`write_result`; ``walt-bench report`` finds every such file under a folder (recursively,
``*.json`` whose ``format`` is ``walt_bench.result/1``) with :func:`load_results`. Example::

    {
      "format": "walt_bench.result/1",
      "table": "3c",                         # "1", "2", "3a".."3f", "4", "5"
      "variant": "p_sc=0.3",                 # a row key of walt_bench.report.paper.TABLES[table]
      "scale": "smoke",                      # smoke | small | paper
      "spec": "experiments/ablations/table3c-psc0.3.yaml",
      "overrides": ["diffusion.p_sc=0.3"],
      "identities": {"tokenizer": "...", "cache": "...", "diffusion": "...", "samples": "...", "metrics": "..."},
      "metrics": {"fvd": {"label": "FVD-synthetic", "mean": 13.5, "std": 0.4, "num_samples": 64,
                          "repeats": 1, "protocol": "synthetic_fvd"}},
      "extra": {"params_m": 313.2, "steps_per_s": 5.1, "peak_mem_gib": 0.4, "train_steps": 1500},
      "artifacts": {"metrics_jsonl": "runs/.../metrics.jsonl", "samples_grid": "runs/.../grid.gif",
                    "samples_npz": "runs/.../samples.npz"},
      "status": "complete",                  # or "failed", with "error": "message"
      "created": "2026-12-02T01:00:00Z",
      "git_commit": "..."
    }

Metric keys: ``fvd``, ``is``, ``fid``, ``rfvd``, ``psnr``, ``kid`` ... (``paper.METRICS`` lists the
ones the paper's tables print). ``extra`` holds numbers that are not sample metrics: ``params_m``
(millions, Tables 1, 2, 3d, 4), ``steps_per_s`` and ``peak_mem_gib`` (3b), ``final_loss`` (4),
``train_steps``. Artifact paths are relative to the result file's folder, else to the working directory.

A file that is not valid JSON, or carries the format tag but fails validation, is skipped with a
:class:`ResultFileWarning` naming it; JSON files without the tag (other tools' outputs) are ignored.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FORMAT = "walt_bench.result/1"
FORMAT_PREFIX = "walt_bench.result/"
TABLE_IDS = ("1", "2", "3a", "3b", "3c", "3d", "3e", "3f", "4", "5")
SCALES = ("smoke", "small", "paper")

TableId = Literal["1", "2", "3a", "3b", "3c", "3d", "3e", "3f", "4", "5"]
Scale = Literal["smoke", "small", "paper"]


class ResultFileWarning(UserWarning):
    """A result file was skipped (unreadable or invalid) or shadowed by another; the message names it."""


class MetricRecord(BaseModel):
    """One metric of one result: mean (± std over ``repeats``) over ``num_samples`` samples per repeat.
    Further keys (e.g. ``chunk`` for ADM's IS) are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    label: str = Field(description="What the number is, e.g. 'FVD' or 'FVD-synthetic' (never comparable).")
    mean: float
    std: float | None = Field(None, ge=0)
    num_samples: int = Field(ge=1, description="Samples per repeat.")
    repeats: int = Field(1, ge=1)
    protocol: str | None = None


class Result(BaseModel):
    """One table cell: ``table``/``variant`` at ``scale``, with the identities and files that produced it."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["walt_bench.result/1"] = FORMAT
    table: TableId
    variant: str = Field(min_length=1)
    scale: Scale
    spec: str | None = None
    overrides: list[str] = Field(default_factory=list)
    identities: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, MetricRecord] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    status: Literal["complete", "failed"] = "complete"
    error: str | None = None
    created: str | None = None
    git_commit: str | None = None

    @field_validator("created")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValueError(f"not an ISO 8601 time: {value!r}") from exc
        return value

    @field_validator("extra")
    @classmethod
    def _finite_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k, v in value.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite values for {bad}; leave a number out rather than write NaN")
        return value

    @model_validator(mode="after")
    def _error_iff_failed(self) -> Result:
        if self.status == "failed" and not self.error:
            raise ValueError("status 'failed' needs an 'error' message")
        return self

    def value(self, metric: str) -> float | None:
        """``metrics[metric].mean``, else a number in ``extra[metric]``, else None."""
        if metric in self.metrics:
            return self.metrics[metric].mean
        v = self.extra.get(metric)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass
class LoadedResult:
    result: Result
    path: Path

    def artifact(self, name: str) -> Path | None:
        """The artifact's path if it exists (relative to the result file's folder, else the cwd)."""
        raw = self.result.artifacts.get(name)
        if not raw:
            return None
        p = Path(raw)
        for candidate in (p,) if p.is_absolute() else (self.path.parent / p, Path.cwd() / p):
            if candidate.exists():
                return candidate
        return None


@dataclass
class LoadedResults:
    results: list[LoadedResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per skipped or shadowed file


def _problem(out: LoadedResults, message: str) -> None:
    out.problems.append(message)
    warnings.warn(message, ResultFileWarning, stacklevel=3)


def _summarise(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())


def load_results(root: str | Path) -> LoadedResults:
    """Every valid result file under ``root`` (recursively), in path order. Bad files are skipped with a
    :class:`ResultFileWarning` naming them (also listed in ``problems``); nothing here raises for a bad file."""
    out = LoadedResults()
    for path in sorted(Path(root).rglob("*.json")):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            _problem(out, f"skipped {path}: not readable JSON ({exc})")
            continue
        tag = data.get("format") if isinstance(data, dict) else None
        if not isinstance(tag, str) or not tag.startswith(FORMAT_PREFIX):
            continue  # another tool's JSON (metrics.json, summary.json, ...)
        if tag != FORMAT:
            _problem(
                out, f"skipped {path}: format {tag!r} is not {FORMAT!r} (written by a newer walt_bench?)"
            )
            continue
        try:
            out.results.append(LoadedResult(Result.model_validate(data), path))
        except ValidationError as exc:
            _problem(out, f"skipped {path}: {_summarise(exc)}")
    return out


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def metric_record(
    label: str,
    values: list[float] | float,
    num_samples: int,
    protocol: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A metric record from one value or one value per repeat (mean and sample std over repeats)."""
    vals = [float(values)] if isinstance(values, int | float) else [float(v) for v in values]
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    record = {"label": label, "mean": mean, "std": std, "num_samples": int(num_samples)}
    record.update(repeats=len(vals), protocol=protocol, **extra)
    return record


def result_path(root: str | Path, table: str, variant: str, scale: str) -> Path:
    """A conventional place for a result file: ``ROOT/table3c/p_sc=0.3-smoke.json`` (unsafe characters
    of the variant replaced by ``_``)."""
    return Path(root) / f"table{table}" / f"{slug(variant)}-{scale}.json"


def slug(text: str) -> str:
    """A file-name-safe form of a variant key ("L/separate" -> "L_separate")."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "_"


def write_result(
    path: str | Path,
    *,
    table: str,
    variant: str,
    scale: str,
    metrics: dict[str, dict[str, Any]] | None = None,
    spec: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    identities: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    artifacts: dict[str, str | Path] | None = None,
    status: str = "complete",
    error: str | None = None,
    created: str | None = None,
    git_commit: str | None = None,
) -> Path:
    """Validate and write one result file atomically; returns its path. Raises ``ValueError`` naming every
    bad field (pydantic's ``ValidationError``) before anything is written. ``created`` defaults to now (UTC)
    and ``git_commit`` to ``git rev-parse HEAD`` of the working directory (None outside a repository)."""
    result = Result(
        table=table,
        variant=variant,
        scale=scale,
        spec=str(spec) if spec is not None else None,
        overrides=list(overrides),
        identities=dict(identities or {}),
        metrics=dict(metrics or {}),
        extra=dict(extra or {}),
        artifacts={k: str(v) for k, v in (artifacts or {}).items()},
        status=status,
        error=error,
        created=created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        git_commit=git_commit if git_commit is not None else _git_commit(),
    )
    from walt_bench.report.paper import TABLES

    known = TABLES[result.table].variant_keys
    if result.variant not in known:  # allowed (e.g. a sweep beyond the paper's rows), but likely a typo
        warnings.warn(
            f"variant {result.variant!r} is not a row of Table {result.table} ({', '.join(known)}); "
            "the report will list it after the paper's rows",
            ResultFileWarning,
            stacklevel=2,
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result.model_dump(mode="json", exclude_none=False), indent=2) + "\n")
    os.replace(tmp, path)
    return path
