"""Spec section ``sweep``: an Optuna study whose trials are sets of spec overrides."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from walt_bench.config import PositiveInt, Section


class SweepConfig(Section):
    study_name: str | None = Field(None, description="Optuna study name; None = the run name.")
    storage: str = Field(
        "sqlite:///optuna.db", description="Optuna RDB storage URL (PostgreSQL for many workers)."
    )
    sampler: Literal["grid", "tpe", "random"] = Field(
        "grid", description="grid reproduces an ablation table exactly (every point enqueued up front)."
    )
    params: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Dotted spec path -> values to try, e.g. {'model.lora_rank': [2, 4, 16, 64, 256]}.",
    )
    metric: str = Field("fvd", description="Key of the metrics JSON to optimise.")
    direction: Literal["minimize", "maximize"] = Field("minimize", description="Optimisation direction.")
    n_trials: PositiveInt | None = Field(None, description="Trials for tpe/random; grid runs every point.")
    max_retries: int = Field(
        1, ge=0, description="Retries of a failed trial (heartbeat-detected or crashed)."
    )
