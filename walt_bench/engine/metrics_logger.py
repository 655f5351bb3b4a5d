"""The trainer's metrics logger: one record per logged step to ``metrics.jsonl`` and the tracker, best values.

    log = MetricsLogger(run_dir / "metrics.jsonl", tracker, is_main=True, resume_step=None,
                        tokens_per_sample=1280, flops_per_sample=2.4e12, peak_flops=989e12, world_size=8)
    log.count(batch_size)                                   # every micro-batch
    log.step(step, loss_sum, norms, lrs, extras, first="denoiser")   # a logged optimizer step
    log.eval(step, {"val/psnr": 24.1})                      # results of an eval_fn
    log.skipped(step, ["denoiser"], {"denoiser": nan})      # a refused (non-finite) step
    log.best, log.last                                      # for summary.json and checkpoints

Throughput (samples/s, tokens/s, MFU) is measured over the window since the previous logged step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from walt_bench.engine.rundir import MetricsLog
from walt_bench.engine.throughput import mfu


class MetricsLogger:
    def __init__(
        self,
        path: Path,
        tracker: Any,
        *,
        is_main: bool,
        resume_step: int | None,
        world_size: int = 1,
        tokens_per_sample: int | None = None,
        flops_per_sample: float | None = None,
        peak_flops: float | None = None,
        peak_memory=None,
        higher_is_better: Sequence[str] = (),
        best: Mapping[str, Mapping[str, float]] | None = None,
    ):
        self.tracker = tracker
        self.is_main = is_main
        self.world_size = world_size
        self.tokens_per_sample = tokens_per_sample
        self.flops_per_sample = flops_per_sample
        self.peak_flops = peak_flops
        self.peak_memory = peak_memory or (lambda: None)
        self.higher_is_better = set(higher_is_better)
        self.best: dict[str, dict[str, float]] = {k: dict(v) for k, v in (best or {}).items()}
        self.last: dict[str, Any] = {}
        self.total_samples = 0
        self._window_t, self._window_samples = time.perf_counter(), 0
        self._log = MetricsLog(path, resume_step) if is_main else None

    def count(self, samples: int) -> None:
        self.total_samples += samples

    def step(
        self,
        step: int,
        loss_sum: Mapping[str, float],
        norms: Mapping[str, float],
        lrs: Mapping[str, float],
        extras: Mapping[str, float],
        first: str,
    ) -> dict[str, Any]:
        """Write the record of optimizer step ``step`` (losses, grad norms, LRs, extras, throughput, memory)."""
        now = time.perf_counter()
        sps = (self.total_samples - self._window_samples) * self.world_size / max(now - self._window_t, 1e-9)
        self._window_t, self._window_samples = now, self.total_samples
        record: dict[str, Any] = {"step": step, "loss": loss_sum.get(first)}
        for name in loss_sum:
            record[f"{name}/loss"] = float(loss_sum[name])
            record[f"{name}/grad_norm"] = float(norms[name])
            record[f"{name}/lr"] = lrs[name]
        record["lr"] = lrs.get(first)
        record["grad_norm"] = record.get(f"{first}/grad_norm")
        record.update({k: float(v) for k, v in extras.items()})
        record["samples_per_s"] = sps
        if self.tokens_per_sample:
            record["tokens_per_s"] = sps * self.tokens_per_sample
        record["mfu"] = mfu(self.flops_per_sample, sps, self.world_size, self.peak_flops)
        record["peak_mem_gib"] = self.peak_memory()
        record = {k: v for k, v in record.items() if v is not None}
        self.last = record
        if self.is_main:
            self._log.write(record)
            self.tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, step)
            self._track_best({"loss": record["loss"]} if "loss" in record else {}, step)
        return record

    def skipped(self, step: int, parts: Sequence[str], values: Mapping[str, float]) -> None:
        """Record a refused optimizer step (non-finite loss or gradient): ``{"step", "skipped", "parts", ...}``."""
        if self.is_main:
            self._log.write(
                {
                    "step": step,
                    "skipped": "nonfinite",
                    "parts": list(parts),
                    **{k: str(v) for k, v in values.items()},
                }
            )
            self.tracker.log_metrics({"skipped_steps": 1.0}, step)

    def sync(self) -> None:
        """Flush metrics.jsonl to disk (before a checkpoint is written)."""
        if self._log is not None:
            self._log.sync()

    def eval(self, step: int, results: Mapping[str, float]) -> None:
        results = {k: float(v) for k, v in results.items()}
        self.last = {**self.last, **results}
        if self.is_main:
            self._log.write({"step": step, **results})
            self.tracker.log_metrics(results, step)
            self._track_best(results, step)

    def _track_best(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            if v is None or not math.isfinite(v):
                continue
            old = self.best.get(k, {}).get("value")
            if old is None or (v > old if k in self.higher_is_better else v < old):
                self.best[k] = {"value": float(v), "step": step}

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
