"""Spec section ``eval``: which metric protocol, how many samples, and where extractor weights live."""

from __future__ import annotations

from pydantic import Field

from walt_bench.config import PositiveInt, Section


class EvalConfig(Section):
    protocol: str = Field("ucf101_fvd", description="Named evaluation protocol.")
    num_samples: PositiveInt = Field(10000, description="Generated clips per repeat (MAGVIT's UCF-101 protocol: 10,000).")
    repeats: PositiveInt = Field(4, description="Repeats for mean ± std (MAGVIT's UCF-101 protocol: 4).")
