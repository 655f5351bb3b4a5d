"""One trial of a study: a variant's overrides on the study's base spec -> every stage -> a result JSON.

The stages are the ones every driver runs (``stages.run_stages``); each runs under an exclusive file lock named
by its identity (``<run.out_dir>/.locks/<stage>-<identity>.lock``), so two workers that need the same tokenizer
or latent cache do not both train it: the second waits, then finds it done and skips it. ``flock`` locks are
released by the kernel when a worker dies, so a killed worker never leaves a stale lock (they need a filesystem
with working ``flock``: local disks do, some network filesystems do not).

MLflow: the trial is a child run of the study's run (variant, table, scale, identities as tags; the resolved
spec as params; the metrics and extra values; the sample GIF, MP4s, reconstruction PNG, loss curve, metrics and
result JSON as artifacts); the stage runs (tokenizer, diffusion, samples, eval) are children of the trial's run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from walt_bench.sweeps.config import StudyConfig


def trial_overrides(study: StudyConfig, variant: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The study's overrides, then the variant's, then ``extra`` (tracking settings of the run)."""
    return [*study.overrides, *study.variants[variant].overrides, *extra]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stage_lock_name(spec, stage: str) -> str:
    """The identity a stage's lock is named by (stages that write the same output share a lock)."""
    from walt_bench.identity import digest, stage_identity

    d = spec.to_dict()
    if stage in ("data", "classifier"):
        return f"data-{digest(str(Path(spec.data.root).resolve()))}"
    if stage in ("tokenizer", "tokenizer_eval"):
        return f"tokenizer-{stage_identity(d, 'tokenizer')}"
    if stage == "latents":
        return f"latents-{stage_identity(d, 'latents')}"
    return f"diffusion-{stage_identity(d, 'diffusion')}"  # diffusion, samples, metrics


def locked_stages(spec, torchrun: Callable[[str], None] | None = None):
    """``wrap`` for ``run_stages``: each stage under its lock; with ``torchrun``, the trainers run under it first
    (the in-process call then finds the run finished)."""
    locks = Path(spec.run.out_dir) / ".locks"

    def wrap(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with file_lock(locks / f"{stage_lock_name(spec, name)}.lock"):
            if torchrun is not None and name in ("tokenizer", "diffusion"):
                torchrun(name)
            return run()

    return wrap


def torchrun_trainer(spec_file: Path, nproc: int) -> Callable[[str], None]:
    """Run ``tokenizer train`` / ``train`` of ``spec_file`` under ``torchrun --standalone --nproc_per_node``."""

    def run(stage: str) -> None:
        command = ["tokenizer", "train"] if stage == "tokenizer" else ["train"]
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "walt_bench",
            *command,
            "--spec",
            str(spec_file),
        ]
        subprocess.run(cmd, check=True)

    return run


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def objective_values(study: StudyConfig, result: dict[str, Any]) -> list[float]:
    """The trial's value per objective; raises ValueError naming a missing or non-finite one."""
    values = []
    for obj in study.objectives:
        entry = result["metrics"].get(obj.metric)
        value = entry.get("mean") if isinstance(entry, dict) else result["extra"].get(obj.metric)
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"objective {obj.metric!r} is {value!r} in the trial's result")
        values.append(float(value))
    return values


def run_trial(
    study: StudyConfig,
    variant: str,
    spec,
    overrides: list[str],
    *,
    spec_path: str,
    results_dir: str | Path,
    parent_run_id: str | None = None,
    trial_number: int | None = None,
    gpus_per_trial: int = 1,
    progress: bool = False,
    on_loss: Callable[[float, int], None] | None = None,
) -> dict[str, Any]:
    """Run every stage of ``spec`` (the variant's resolved spec) and write its result file (the report's format,
    ``stages.write_cell_result``); returns the result (``status`` ``complete``, or ``failed`` with the error: the
    exception is re-raised after the file is written) plus ``result_path``."""
    from walt_bench.identity import stage_identities
    from walt_bench.report.results import result_path
    from walt_bench.stages import run_stages, write_cell_result
    from walt_bench.tracking.mlflow import make_tracker, run_context

    scale = spec.run.scale
    tags = {"table": study.table, "variant": variant, "scale": scale, "study": study.name}
    ids = stage_identities(spec)
    with run_context(parent_run_id=parent_run_id, tags=tags):
        tracker = make_tracker(
            spec.tracking,
            run_name=variant,
            params=spec.to_dict(),
            tags={
                "stage": "trial",
                "identity": ids["diffusion"],
                **({"optuna_trial": str(trial_number)} if trial_number is not None else {}),
            },
        )
        tracker.start()
    trial_dir = Path(spec.run.out_dir) / "trials" / f"{study.name}-{ids['diffusion']}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    spec_file = trial_dir / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    tracker.log_artifact(str(spec_file))
    torchrun = torchrun_trainer(spec_file, gpus_per_trial) if gpus_per_trial > 1 else None
    path = result_path(results_dir, study.table, variant, scale)
    cell = dict(table=study.table, variant=variant, spec_file=spec_path, overrides=overrides)
    record: dict[str, Any] = {}
    try:
        with run_context(parent_run_id=tracker.run_id, tags=tags), _loss_hook(on_loss):
            record = run_stages(
                spec,
                synthesize_missing=(scale == "smoke"),
                progress=progress,
                wrap=locked_stages(spec, torchrun),
            )
        write_cell_result(spec, record, path, **cell)
    except BaseException as exc:
        write_cell_result(spec, record, path, **cell, error=f"{type(exc).__name__}: {exc}"[:2000])
        tracker.log_artifact(str(path))
        tracker.set_tags({"status": "failed"})
        tracker.end("FAILED")
        raise
    result = json.loads(path.read_text())
    stages = record["stages"]
    samples = Path(stages["samples"]["path"])
    _log_samples_run(spec, variant, tags, tracker.run_id, samples, result["identities"].get("samples"))
    _log_trial(tracker, result, study.record, trial_dir, stages)
    tracker.log_artifact(str(path))
    tracker.set_tags({"status": "complete"})
    tracker.end("FINISHED")
    return {**result, "result_path": str(path), "wall_s": record["wall_s"]}


def _log_trial(tracker, result: dict[str, Any], record: list[str], trial_dir: Path, stages) -> None:
    """The trial run's metrics (fvd, is, ... and the study's ``record`` extras), identities and review files."""
    from walt_bench.tracking.mlflow import plot_curves

    shown = {k: v for k, v in result["metrics"].items() if k in ("fvd", "is", *record)}
    values = {k: v["mean"] for k, v in shown.items() if v.get("mean") is not None}
    values.update({f"{k}_std": v["std"] for k, v in shown.items() if v.get("std") is not None})
    values.update({k: v for k, v in result["extra"].items() if k in record and isinstance(v, int | float)})
    tracker.log_metrics(values, step=0)
    tracker.set_tags({f"identity.{k}": v for k, v in result["identities"].items() if v})
    curves = {}
    for name, stage in (("tokenizer loss", "tokenizer"), ("diffusion loss", "diffusion")):
        run_dir = Path(stages[stage]["run_dir"])
        points = [(r["step"], r["loss"]) for r in _read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
        if points:
            curves[name] = points
    if curves:
        tracker.log_artifact(str(plot_curves(curves, trial_dir / "loss_curves.png", result["variant"])))
    files = [result["artifacts"].get("samples_grid"), result["artifacts"].get("reconstructions")]
    files.append(stages["metrics"]["path"])
    for file in files:
        if file and Path(file).is_file():
            tracker.log_artifact(file)


def _log_samples_run(spec, variant, tags, parent_run_id, samples: Path, identity: str | None) -> None:
    """The samples stage's own run: the GIF (MLflow previews it), the MP4s and the samples record."""
    from walt_bench.tracking.mlflow import make_tracker, run_context

    with run_context(parent_run_id=parent_run_id, tags=tags):
        tracker = make_tracker(
            spec.tracking,
            run_name=f"{variant}-samples",
            tags={"stage": "samples", "identity": identity or ""},
        )
        tracker.start()
    for name in ("grid.gif", "samples.json"):
        if (samples / name).is_file():
            tracker.log_artifact(str(samples / name))
    if (samples / "videos").is_dir():
        tracker.log_artifact(str(samples / "videos"), "videos")
    tracker.end("FINISHED")


@contextlib.contextmanager
def _loss_hook(on_loss: Callable[[float, int], None] | None) -> Iterator[None]:
    """Pass the diffusion trainer's logged loss to ``on_loss(value, step)`` (the pruner), by wrapping the
    trackers the trainers build; no hook: nothing changes."""
    if on_loss is None:
        yield
        return
    import walt_bench.tracking.mlflow as tracking

    original = tracking.make_tracker

    def make(cfg, run_name, params=None, tags=None, enabled=True):
        tracker = original(cfg, run_name, params, tags, enabled)
        if (tags or {}).get("stage") != "diffusion":
            return tracker
        log = tracker.log_metrics

        def log_metrics(metrics, step):
            log(metrics, step)
            if metrics.get("loss") is not None:
                on_loss(float(metrics["loss"]), int(step))

        tracker.log_metrics = log_metrics
        return tracker

    tracking.make_tracker = make
    try:
        yield
    finally:
        tracking.make_tracker = original
