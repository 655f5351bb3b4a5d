"""Spec section ``tracking``: MLflow. Excluded from the spec hash (where results are logged does not
change them)."""

from __future__ import annotations

from pydantic import Field

from walt_bench.config import Section


class TrackingConfig(Section):
    enabled: bool = Field(True, description="Log runs to MLflow (rank 0 only).")
    uri: str | None = Field(
        None,
        description="Tracking URI; None = $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory.",
    )
    experiment: str = Field(
        "walt_bench", description="MLflow experiment name (created before the run starts)."
    )
    log_artifacts: bool = Field(True, description="Upload spec.yaml and summary.json as run artifacts.")
    buffer_dir: str = Field(
        ".mlflow-buffer",
        description="Every tracking call is journaled here first and sent from a background thread; what a "
        "down server did not receive stays here until it is back or `walt-bench mlflow-sync` uploads it.",
    )
    timeout_s: float = Field(
        5.0,
        gt=0,
        description="Seconds one request to a tracking server may take (MLflow's own default retries for "
        "minutes; walt_bench sends each request once and retries from the journal instead).",
    )
    retry_s: float = Field(
        30.0, gt=0, description="Seconds between attempts to reach a tracking server that did not answer."
    )
    system_metrics_s: float = Field(
        10.0,
        ge=0,
        description="Seconds between system metrics samples (CPU, RAM, GPU memory) logged to the run; 0 = off.",
    )
