"""How a study runs (spec section ``sweep``) and what it is (a study file, ``experiments/studies/*.yaml``).

The spec section holds the execution settings a study's base spec (or the study's ``overrides``) may set:
storage, retries, heartbeat, GPUs per trial. The study file says what is compared::

    name: table3c
    table: "3c"
    spec: ../ablations/table3e-full.yaml       # the base spec (relative to this file)
    scale: smoke                               # default scale; `--scale` wins
    overrides: []                              # applied to every trial, before the variant's
    variants:                                  # variant label (the report's key) -> overrides
      p_sc=0.0: [diffusion.p_sc=0.0]
      p_sc=0.3: [diffusion.p_sc=0.3]
      # or another spec file: {spec: ../tables/table1-ucf101-XL.yaml, overrides: []}
    objectives: [{metric: fvd, direction: minimize}]
    record: [params_m]                         # extra values each trial records (see EXTRA)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from walt_bench.config import PositiveInt, Section

# What a trial's MLflow run shows beside fvd and is (``record:`` of a study file); the result file holds them all
# (``stages.collect_metrics`` / ``collect_extra``).
EXTRA = ("params_m", "steps_per_s", "peak_mem_gib", "final_loss", "train_steps", "rfvd")


class SweepConfig(Section):
    storage: str = Field(
        "sqlite:///optuna.db",
        description="Optuna RDB storage URL: SQLite for one machine, postgresql://user@host:port/db for workers "
        "on several machines (`walt-bench sweep --storage` wins).",
    )
    max_retries: int = Field(
        1, ge=0, description="Retries of a failed trial (a crash, or a worker whose heartbeat stopped)."
    )
    heartbeat_s: PositiveInt = Field(
        30, description="Seconds between a running trial's heartbeats in the Optuna storage."
    )
    grace_s: PositiveInt | None = Field(
        None,
        description="A running trial without a heartbeat for this long is failed (and retried); None = 2 x "
        "heartbeat_s.",
    )
    gpus_per_trial: PositiveInt = Field(
        1,
        description="GPUs each trial trains on; above 1 the trainers run under `torchrun --nproc_per_node N`. "
        "Workers = visible GPUs // gpus_per_trial (at most --workers).",
    )
    pruner: Literal["none", "median"] = Field(
        "none",
        description="Stop a trial whose diffusion training loss is worse than the median of earlier trials at "
        "the same step (Optuna's MedianPruner; single-objective studies only).",
    )
    prune_warmup_steps: int = Field(0, ge=0, description="Training steps before the pruner may stop a trial.")


class Variant(Section):
    spec: str | None = Field(
        None, description="This variant's own spec file (relative to the study file); None = the study's."
    )
    overrides: list[str] = Field(default_factory=list, description="key=value on top of it.")


class Objective(Section):
    metric: str = Field(description="fvd, is or rfvd (a metric of the result JSON) or an EXTRA value.")
    direction: Literal["minimize", "maximize"] = "minimize"


class StudyConfig(Section):
    name: str = Field(description="Study name; the Optuna study and MLflow experiment are <name>-<scale>.")
    table: str = Field(description="The paper's table this study redoes (the report's key), e.g. 3c.")
    description: str = ""
    spec: str = Field(description="The base spec, relative to the study file.")
    scale: str | None = Field("smoke", description="Scale overlay when --scale is not given.")
    overrides: list[str] = Field(default_factory=list, description="key=value applied to every trial.")
    variants: dict[str, list[str] | Variant] = Field(
        description="Variant label (the report's row key) -> the overrides that make it, or {spec, overrides} "
        "when the variant is another spec file (the scale overlay applies after the spec, before overrides)."
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective(metric="fvd")],
        description="What Optuna records as the trial's value(s); several make a multi-objective study.",
    )
    record: list[str] = Field(
        default_factory=list, description=f"Extra values to record: {', '.join(EXTRA)}."
    )
    notes: str = ""

    @field_validator("variants")
    @classmethod
    def _some_variants(cls, v: dict[str, list[str] | Variant]) -> dict[str, Variant]:
        if not v:
            raise ValueError("a study needs at least one variant")
        return {k: x if isinstance(x, Variant) else Variant(overrides=x) for k, x in v.items()}

    @field_validator("record")
    @classmethod
    def _known_extra(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in EXTRA]
        if bad:
            raise ValueError(f"unknown record {bad}; known: {', '.join(EXTRA)}")
        return v
