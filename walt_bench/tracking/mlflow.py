"""MLflow logging from rank 0: params = the flattened resolved spec, step metrics, artifacts.

The store is ``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the
working directory (MLflow 3 no longer accepts the ``./mlruns`` file store). The experiment is created
before any run starts (two processes creating it at once race and one run lands in "Default").

    tracker = make_tracker(cfg.tracking, run_name="smoke-diffusion", params=spec.to_dict(),
                           tags={"stage": "diffusion", "identity": "3f1c0a9e7b21"})
    tracker.start(run_id=None)        # the engine does this, with the run id a checkpoint recorded
    tracker.log_metrics({"loss": 0.12, "lr": 5e-4}, step=10)
    tracker.log_artifact("runs/diffusion-3f1c0a9e7b21/summary.json")
    tracker.end("FINISHED")

``start_tracking(...)`` is ``make_tracker(...)`` already started. :class:`NullTracker`
(``engine/tracker.py``) has the same methods and does nothing (tracking disabled, or ranks other than 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from walt_bench.engine.tracker import NullTracker
from walt_bench.tracking.config import TrackingConfig

DEFAULT_URI = "sqlite:///mlflow.db"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length
MAX_BATCH = 100  # params per log_batch call (MLflow limit)


def resolve_uri(cfg: TrackingConfig | None = None) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    if cfg is not None and cfg.uri:
        return cfg.uri
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def flatten_params(d: Mapping[str, Any], prefix: str = "", max_len: int = MAX_PARAM_VALUE) -> dict[str, str]:
    """``{"train": {"lr": 5e-4}}`` -> ``{"train.lr": "0.0005"}``; values longer than ``max_len`` are cut
    with a trailing ``...`` so MLflow accepts them."""
    out: dict[str, str] = {}
    for key, value in d.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, path, max_len))
        else:
            text = str(value)
            out[path] = text if len(text) <= max_len else text[: max_len - 3] + "..."
    return out


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file (``<db dir>/mlruns``), not in whatever
    directory the process happens to run in; other stores keep MLflow's default (None)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix) :]).expanduser().resolve().parent / "mlruns").as_uri()


def ensure_experiment(uri: str, name: str) -> str:
    """Id of experiment ``name`` in store ``uri``, creating it if needed (call before workers start)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except MlflowException:  # created concurrently by another process
        return client.get_experiment_by_name(name).experiment_id


class MlflowTracker(NullTracker):
    """One MLflow run, driven through ``MlflowClient`` (no global fluent state)."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ):
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.params = dict(params or {})
        self.run_id = None

    def start(self, run_id: str | None = None) -> None:
        """Continue run ``run_id`` when it exists in this store (a resumed trainer), else create a run."""
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = ensure_experiment(self.uri, self.experiment)
        if run_id is not None and self._exists(run_id):
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=self.tags)
            self.run_id = run.info.run_id
        if self.params:
            self.log_params(flatten_params(self.params))

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.experiment_id == self.experiment_id
        except MlflowException:  # e.g. the tracking URI changed since the checkpoint was written
            return False

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, int(step))
            for k, v in metrics.items()
            if v is not None and math.isfinite(v)
        ]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_BATCH])

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def make_tracker(
    cfg: TrackingConfig | None,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> NullTracker:
    """An unstarted :class:`MlflowTracker` (params logged flattened at start), or a :class:`NullTracker` when
    ``cfg.enabled`` or ``enabled`` is false (pass ``enabled=is_rank0``)."""
    if cfg is None or not cfg.enabled or not enabled:
        return NullTracker()
    return MlflowTracker(resolve_uri(cfg), cfg.experiment, run_name, tags=tags, params=params)


def start_tracking(
    cfg: TrackingConfig | None,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> NullTracker:
    """:func:`make_tracker`, started as a new run."""
    tracker = make_tracker(cfg, run_name, params, tags, enabled)
    tracker.start()
    return tracker
