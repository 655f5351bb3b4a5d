"""Spec section ``train``: the optimisation and run-directory settings shared by both trainers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from walt_bench.config import PositiveFloat, PositiveInt, Section


class TrainConfig(Section):
    steps: PositiveInt = Field(60000, description="Optimizer steps (Table 8, UCF-101: 60k).")
    batch_size: PositiveInt = Field(256, description="Global batch size (Table 8, UCF-101: 256).")
    optimizer: Literal["adamw", "adam", "adafactor"] = Field("adamw", description="Table 8: AdamW (Adafactor for T2V).")
    lr: PositiveFloat = Field(5e-4, description="Peak learning rate (Table 8: 5e-4).")
    lr_schedule: Literal["cosine", "constant"] = Field("cosine", description="Table 8: cosine.")
    ema: bool = Field(True, description="Keep an EMA of the weights (Table 8: yes for ImageNet/UCF/K600).")
