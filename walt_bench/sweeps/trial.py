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
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from walt_bench.sweeps.config import StudyConfig
from walt_bench.sweeps.results import write_result


def trial_overrides(study: StudyConfig, variant: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The study's overrides, then the variant's, then ``extra`` (tracking settings of the run)."""
    return [*study.overrides, *study.variants[variant], *extra]


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


def extra_values(spec, record: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """``train_steps`` and the study's ``record`` values: parameters (millions, on the meta device), training
    steps/s (median of the logged windows), peak memory (GiB; None on CPU)."""
    out: dict[str, Any] = {"train_steps": spec.train.steps}
    log = _read_jsonl(Path(record["stages"]["diffusion"]["run_dir"]) / "metrics.jsonl")
    if "params_m" in wanted:
        from walt_bench.denoiser.info import count_parameters
        from walt_bench.denoiser.model import build_denoiser

        out["params_m"] = round(count_parameters(build_denoiser(spec, device="meta"))["total"] / 1e6, 4)
    if "steps_per_s" in wanted:
        rates = sorted(r["samples_per_s"] for r in log if r.get("samples_per_s"))
        out["steps_per_s"] = rates[len(rates) // 2] / spec.train.batch_size if rates else None
    if "peak_mem_gib" in wanted:
        mems = [r["peak_mem_gib"] for r in log if r.get("peak_mem_gib") is not None]
        out["peak_mem_gib"] = max(mems) if mems else None
    return out


def metric_entries(spec, record: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """``fvd`` / ``is`` (the protocol's two metrics) and, when asked, ``rfvd`` of the tokenizer."""
    result = record["stages"]["metrics"]["result"]
    out: dict[str, Any] = {}
    common = {
        "num_samples": result.get("num_samples"),
        "repeats": result.get("repeats"),
        "protocol": spec.eval.protocol,
    }
    for key, label in (
        ("fvd", result.get("metric")),
        ("is", (result.get("protocol") or {}).get("is_metric")),
    ):
        if label and label in result:
            out[key] = {"label": label, "mean": result[label]["mean"], "std": result[label]["std"], **common}
    if "rfvd" in wanted:
        tok = record["stages"]["tokenizer_eval"]
        rfvd = tok.get("rfvd")
        value = rfvd.get("value") if isinstance(rfvd, dict) else rfvd
        out["rfvd"] = {
            "label": rfvd.get("metric", "rFVD") if isinstance(rfvd, dict) else "rFVD",
            "mean": value,
            "std": 0.0 if value is not None else None,
            "num_samples": tok.get("num_clips"),
            "repeats": 1,
            "protocol": "rfvd",
            "note": tok.get("rfvd_note"),
        }
    return out


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
    study_file: str,
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
    """Run every stage of ``spec`` (the variant's resolved spec) and write its result JSON; returns the result
    (``status`` ``complete`` or ``failed`` with the error; the exception is re-raised after it is written)."""
    from walt_bench.identity import stage_identities
    from walt_bench.stages import run_stages
    from walt_bench.tracking.mlflow import git_commit, make_tracker, run_context

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
    result: dict[str, Any] = {
        "table": study.table,
        "variant": variant,
        "scale": scale,
        "spec": spec_path,
        "study": study_file,
        "overrides": overrides,
        "identities": {"tokenizer": ids["tokenizer"], "cache": ids["latents"], "diffusion": ids["diffusion"]},
        "metrics": {},
        "extra": {},
        "artifacts": {},
        "status": "failed",
        "error": None,
        "git_commit": git_commit(),
        "mlflow_run_id": tracker.run_id,
    }
    trial_dir = Path(spec.run.out_dir) / "trials" / f"{study.name}-{ids['diffusion']}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    spec_file = trial_dir / "spec.yaml"
    spec_file.write_text(spec.to_yaml())
    tracker.log_artifact(str(spec_file))
    torchrun = torchrun_trainer(spec_file, gpus_per_trial) if gpus_per_trial > 1 else None
    t0 = time.perf_counter()
    try:
        with run_context(parent_run_id=tracker.run_id, tags=tags), _loss_hook(on_loss):
            record = run_stages(
                spec,
                synthesize_missing=(scale == "smoke"),
                progress=progress,
                wrap=locked_stages(spec, torchrun),
            )
        stages = record["stages"]
        samples = Path(stages["samples"]["path"])
        metrics_file = Path(stages["metrics"]["path"])
        result["identities"].update(
            samples=stages["samples"].get("identity"),
            metrics=metrics_file.stem.removeprefix("metrics-"),
        )
        result["metrics"] = metric_entries(spec, record, study.record)
        result["extra"] = extra_values(spec, record, study.record)
        if "rfvd" in study.record:
            result["extra"]["rfvd"] = result["metrics"]["rfvd"]["mean"]
        diffusion_dir = Path(stages["diffusion"]["run_dir"])
        result["artifacts"] = {
            "metrics_json": str(metrics_file),
            "metrics_jsonl": str(diffusion_dir / "metrics.jsonl"),
            "samples_grid": str(samples / "grid.gif"),
            "samples_npz": str(samples / "samples.npz"),
            "reconstructions": stages["tokenizer_eval"].get("reconstructions"),
        }
        result["wall_s"] = record["wall_s"]
        result["status"] = "complete"
        _log_samples_run(spec, variant, tags, tracker.run_id, samples, stages["samples"].get("identity"))
        _log_trial(tracker, result, trial_dir, Path(stages["tokenizer"]["run_dir"]), diffusion_dir)
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=20)
        raise
    finally:
        result["trial_wall_s"] = round(time.perf_counter() - t0, 1)
        path = write_result(results_dir, result)
        result["result_path"] = str(path)
        tracker.log_artifact(str(path))
        tracker.set_tags({"status": result["status"]})
        tracker.end("FINISHED" if result["status"] == "complete" else "FAILED")
    return result


def _log_trial(
    tracker, result: dict[str, Any], trial_dir: Path, tokenizer_dir: Path, diffusion_dir: Path
) -> None:
    from walt_bench.tracking.mlflow import plot_curves

    values = {k: v["mean"] for k, v in result["metrics"].items() if v.get("mean") is not None}
    values.update({f"{k}_std": v["std"] for k, v in result["metrics"].items() if v.get("std") is not None})
    values.update({k: v for k, v in result["extra"].items() if isinstance(v, int | float) and k != "rfvd"})
    tracker.log_metrics(values, step=0)
    tracker.set_tags({f"identity.{k}": v for k, v in result["identities"].items() if v})
    curves = {}
    for name, run_dir in (("tokenizer loss", tokenizer_dir), ("diffusion loss", diffusion_dir)):
        points = [(r["step"], r["loss"]) for r in _read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
        if points:
            curves[name] = points
    if curves:
        tracker.log_artifact(str(plot_curves(curves, trial_dir / "loss_curves.png", result["variant"])))
    for key in ("samples_grid", "reconstructions", "metrics_json"):
        if result["artifacts"].get(key):
            tracker.log_artifact(result["artifacts"][key])


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


def _env_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))
