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
