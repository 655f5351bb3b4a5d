"""Training FLOPs per example count the self-conditioning pass as the objective runs it (§4.3): on the whole
micro-batch whenever any of its examples draws it."""

from __future__ import annotations

import pytest

from walt_bench.diffusion.train import train_flops_per_sample
from walt_bench.spec import load_spec

STATS = {"train_flops_per_sample": 3.0, "forward_flops_per_sample": 1.0}


@pytest.mark.parametrize(
    ("p_sc", "micro", "expected"),
    [(0.0, 8, 3.0), (1.0, 8, 4.0), (0.5, 1, 3.5), (0.5, 2, 3.75), (0.9, 32, 4.0)],
)
def test_self_conditioning_pass_counts_when_any_example_of_the_batch_draws_it(p_sc, micro, expected):
    spec = load_spec(None, [f"diffusion.p_sc={p_sc}"])
    assert train_flops_per_sample(spec, STATS, micro) == pytest.approx(expected)


def test_a_model_without_self_conditioning_never_runs_the_pass():
    spec = load_spec(None, ["diffusion.p_sc=0", "model.self_condition=false"])
    assert train_flops_per_sample(spec, STATS, 8) == 3.0
