"""The stage functions every driver shares: ``walt-bench demo``, a ``walt-bench sweep`` trial and (through the CLI
commands, which call the same functions) the DVC pipeline.

Each takes a validated spec, skips work whose identity's output is already done (``walt_bench/identity.py``;
trainers resume, a finished run returns at once) and returns a small JSON-able record::

    from walt_bench.stages import STAGES, run_stages
    record = run_stages(spec, synthesize_missing=True)      # every stage in order, as the demo runs them
    record["stages"]["metrics"]["result"]["FVD-synthetic"]  # what the eval wrote

``STAGES`` lists them in order: data (synthesize when asked and missing; check), tokenizer (train), classifier
(the synthetic protocol's feature network; only for ``eval.protocol=synthetic_fvd``), tokenizer_eval, latents
(encode; only when ``diffusion.latent_source=cache``), diffusion (train), samples, metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from walt_bench.errors import UserError

STAGES = (
    "data",
    "tokenizer",
    "classifier",
    "tokenizer_eval",
    "latents",
    "diffusion",
    "samples",
    "metrics",
)


def ensure_data(spec, *, synthesize_missing: bool = False) -> dict[str, Any]:
    """Synthesize the embedded dataset at ``data.root`` when asked and it is missing; then check every file."""
    from walt_bench.data.check import check_dataset

    root = Path(spec.data.root)
    made = False
    if synthesize_missing and spec.data.dataset == "ucf101" and not (root / "ucfTrainTestlist").is_dir():
        from walt_bench.data.synthetic import synthesize

        synthesize(root)
        made = True
    report = check_dataset(spec.data)
    if report["unreadable"]:
        raise UserError(
            f"data: {report['unreadable']} unreadable files under {root}; `walt-bench data check --spec FILE` "
            "lists them"
        )
    return {"root": str(root), "synthesized": made, "splits": sorted(report["splits"])}


def tokenizer(spec, *, progress: bool | None = None) -> dict[str, Any]:
    from walt_bench.tokenizer.train import train_tokenizer

    s = train_tokenizer(spec, progress=progress).summary
    return {"run_dir": s["run_dir"], "status": s["status"], "last_checkpoint": s["last_checkpoint"]}


def classifier(spec) -> dict[str, Any]:
    """The synthetic-data classifier behind FVD-/IS-synthetic (reused when its file exists)."""
    from walt_bench.evaluation.classifier import train_synthetic_classifier
    from walt_bench.evaluation.extractors import synthetic_classifier_path

    if spec.eval.protocol != "synthetic_fvd":
        return {"skipped": f"eval.protocol={spec.eval.protocol} uses published feature networks"}
    path = Path(spec.eval.classifier_weights or synthetic_classifier_path(spec))
    if path.is_file():
        return {"path": str(path), "reused": True}
    return train_synthetic_classifier(spec, path)


def tokenizer_eval(spec) -> dict[str, Any]:
    """PSNR / SSIM / rFVD of the tokenizer's checkpoint (reused when already measured for that checkpoint)."""
    from walt_bench.hashing import file_sha256
    from walt_bench.tokenizer.build import resolve_checkpoint
    from walt_bench.tokenizer.evaluate import evaluate_tokenizer

    ckpt = resolve_checkpoint(spec)
    existing = ckpt.parent.parent / "tokenizer_eval.json"
    if existing.is_file():
        result = json.loads(existing.read_text())
        if result.get("checkpoint_sha256") == file_sha256(ckpt):
            return {**result, "path": str(existing), "reused": True}
    return evaluate_tokenizer(spec)


def latents(spec) -> dict[str, Any]:
    if spec.diffusion.latent_source != "cache":
        return {"skipped": "diffusion.latent_source=encode"}
    from walt_bench.tokenizer.encode import encode_dataset

    manifest = encode_dataset(spec)
    return {k: manifest.get(k) for k in ("path", "count", "identity", "reused")}


def diffusion(spec, *, progress: bool | None = None) -> dict[str, Any]:
    from walt_bench.diffusion.train import run_train

    s = run_train(spec, progress=progress).summary
    return {"run_dir": s["run_dir"], "status": s["status"], "last_checkpoint": s["last_checkpoint"]}


def samples(
    spec, *, num: int | None = None, seed: int | None = None, progress: bool = True
) -> dict[str, Any]:
    """``num`` clips (default: the eval protocol's count) from the newest checkpoint of the diffusion run."""
    from walt_bench.diffusion.sample import run_sample
    from walt_bench.status import sample_count

    record = run_sample(spec, None, num or sample_count(spec), seed=seed, progress=progress)
    return {k: record.get(k) for k in ("path", "identity", "num", "reused")}


def metrics(spec, samples_path: str | Path) -> dict[str, Any]:
    """The metrics JSON of ``samples_path`` under ``spec.eval`` (reused when its identity's file exists)."""
    from walt_bench.evaluation.commands import default_metrics_path, evaluate_samples

    out = default_metrics_path(spec, samples_path)
    if out.is_file() and out.name != "metrics.json":
        return {"path": str(out), "result": json.loads(out.read_text()), "reused": True}
    result = evaluate_samples(spec, samples_path, out, command="walt_bench.stages.metrics")
    return {"path": str(out), "result": result}


def run_stages(
    spec,
    *,
    synthesize_missing: bool = False,
    num: int | None = None,
    progress: bool = True,
    on_stage: Callable[[int, str], None] | None = None,
    wrap: Callable[[str, Callable[[], dict[str, Any]]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every stage of ``spec`` in order (see the module docstring); stops at the first failing stage with a
    :class:`UserError` naming it. Returns ``{"stages": {name: record}, "wall_s": {name: seconds}}``.
    ``wrap(name, run)`` runs each stage instead of ``run()`` (a sweep holds a lock per stage identity there)."""
    record: dict[str, Any] = {"stages": {}, "wall_s": {}}
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("data", lambda: ensure_data(spec, synthesize_missing=synthesize_missing)),
        ("tokenizer", lambda: tokenizer(spec, progress=None if progress else False)),
        ("classifier", lambda: classifier(spec)),
        ("tokenizer_eval", lambda: tokenizer_eval(spec)),
        ("latents", lambda: latents(spec)),
        ("diffusion", lambda: diffusion(spec, progress=None if progress else False)),
        ("samples", lambda: samples(spec, num=num, progress=progress)),
        ("metrics", lambda: metrics(spec, record["stages"]["samples"]["path"])),
    ]
    for i, (name, run) in enumerate(steps, 1):
        if on_stage is not None:
            on_stage(i, name)
        t0 = time.perf_counter()
        try:
            record["stages"][name] = wrap(name, run) if wrap is not None else run()
        except UserError as exc:
            raise UserError(f"stage {i} ({name}) stopped: {exc}") from exc
        record["wall_s"][name] = round(time.perf_counter() - t0, 1)
    return record


# -- results for the report ------------------------------------------------------------------------
def _metric_key(label: str) -> str:
    """The report's key for a metric label: FVD / FVD-synthetic -> fvd, IS* -> is, FID -> fid, rFVD* -> rfvd."""
    head = label.split("-")[0]
    return {"FVD": "fvd", "IS": "is", "FID": "fid", "rFVD": "rfvd", "KID": "kid"}.get(head, head.lower())


def collect_metrics(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Report metric records (``walt_bench.report.results``) from a ``run_stages`` record."""
    from walt_bench.report.results import metric_record

    out: dict[str, dict[str, Any]] = {}
    result = (record["stages"].get("metrics") or {}).get("result") or {}
    protocol = (result.get("protocol") or {}).get("name")
    for label in (result.get("metric"), (result.get("protocol") or {}).get("is_metric")):
        if label and label in result:
            values = result[label].get("values") or [result[label]["mean"]]
            out[_metric_key(label)] = metric_record(label, values, result.get("num_samples", 1), protocol)
    rfvd = (record["stages"].get("tokenizer_eval") or {}).get("rfvd")
    if rfvd:
        clips = record["stages"]["tokenizer_eval"].get("num_clips", 1)
        out["rfvd"] = metric_record(rfvd["metric"], rfvd["value"], clips, "rfvd")
    return out


def collect_extra(spec, record: dict[str, Any]) -> dict[str, Any]:
    """What else a table row reports: parameters (3d, 4), training throughput and peak memory (3b), final loss."""
    from walt_bench.denoiser.info import count_parameters
    from walt_bench.denoiser.model import build_denoiser

    extra: dict[str, Any] = {"params_m": count_parameters(build_denoiser(spec, device="meta"))["total"] / 1e6}
    run_dir = (record["stages"].get("diffusion") or {}).get("run_dir")
    summary_file = Path(run_dir) / "summary.json" if run_dir else None
    if summary_file is not None and summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        sps = summary.get("samples_per_s")
        extra["train_steps"] = summary.get("final_step")
        if sps:
            extra["steps_per_s"] = sps / spec.train.batch_size
        if summary.get("final_loss") is not None:
            extra["final_loss"] = summary["final_loss"]
        peak = (summary.get("final_metrics") or {}).get("peak_mem_gib")
        if peak:
            extra["peak_mem_gib"] = peak
    return extra


def write_cell_result(
    spec,
    record: dict[str, Any],
    path: str | Path,
    *,
    table: str,
    variant: str,
    spec_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    error: str | None = None,
) -> Path:
    """One result file (``walt_bench.result/1``) for the report from a ``run_stages`` record (or a failure)."""
    from walt_bench.identity import stage_identities
    from walt_bench.report.results import write_result

    stages = record.get("stages", {}) if record else {}
    identities = dict(stage_identities(spec))
    samples = stages.get("samples") or {}
    if samples.get("identity"):
        identities["samples"] = samples["identity"]
    metrics_path = Path((stages.get("metrics") or {}).get("path", ""))
    if metrics_path.name.startswith("metrics-"):
        identities["metrics"] = metrics_path.stem.removeprefix("metrics-")
    artifacts = {}
    if (stages.get("diffusion") or {}).get("run_dir"):
        artifacts["metrics_jsonl"] = str(Path(stages["diffusion"]["run_dir"]) / "metrics.jsonl")
    if samples.get("path"):
        artifacts["samples_grid"] = str(Path(samples["path"]) / "grid.gif")
        if (
            Path(samples["path"]) / "samples.npz"
        ).is_file():  # sampling writes shards/ (a grid.gif for the eye)
            artifacts["samples_npz"] = str(Path(samples["path"]) / "samples.npz")
    if (stages.get("tokenizer_eval") or {}).get("reconstructions"):
        artifacts["reconstructions"] = stages["tokenizer_eval"]["reconstructions"]
    return write_result(
        path,
        table=table,
        variant=variant,
        scale=spec.run.scale,
        metrics=collect_metrics(record) if error is None else {},
        spec=spec_file,
        overrides=list(overrides),
        identities=identities,
        extra=collect_extra(spec, record) if error is None else {},
        artifacts=artifacts,
        status="complete" if error is None else "failed",
        error=error,
    )
