"""Spec section ``tracking``: MLflow."""

from __future__ import annotations

from pydantic import Field

from walt_bench.config import Section


class TrackingConfig(Section):
    enabled: bool = Field(True, description="Log runs to MLflow (rank 0 only).")
    uri: str | None = Field(None, description="Tracking URI; None = $MLFLOW_TRACKING_URI or sqlite:///mlflow.db.")
    experiment: str = Field("walt_bench", description="MLflow experiment name.")
