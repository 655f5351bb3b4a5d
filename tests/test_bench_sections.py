"""walt_bench.bench.sections: the window/full comparison compares what it says, and MFU uses the model's FLOPs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from walt_bench.bench import sections
from walt_bench.spec import load_spec

SMOKE = Path(__file__).resolve().parents[1] / "experiments/smoke/default.yaml"


@pytest.fixture(scope="module")
def spec():
    return load_spec(SMOKE)


@pytest.mark.parametrize("grid", [(5, 16, 16), (5, 32, 32), (5, 32, 56), (3, 12, 20)])
def test_window_and_full_configs_differ_only_in_the_windows(spec, grid):
    windowed, full = sections.attention_configs(spec.model, grid, depth=4, width=64, heads=4)
    a, b = windowed.model_dump(), full.model_dump()
    assert {k for k in a if a[k] != b[k]} == {"spatial_window", "st_window"}
    assert (a["depth"], a["hidden_size"], a["num_heads"]) == (4, 64, 4)
    assert b["st_window"] == "full" and b["spatial_window"] is None  # whole sample / whole frame
    spatial, st = a["spatial_window"], a["st_window"]
    assert all(g % w == 0 for g, w in zip(grid, spatial)) and all(g % w == 0 for g, w in zip(grid, st))


def test_named_grids_use_the_papers_windows():
    assert sections.default_windows((5, 32, 32)) == ((1, 16, 16), (5, 8, 8))  # Table 3 defaults
    assert sections.default_windows((5, 32, 56)) == ((1, 16, 28), (5, 8, 14))  # Table 6's 9:16 windows


def _cfg(spec, **kw):
    base = dict(spec=spec, warmup=1, repeats=1, batch=2, attn_depth=2, attn_width=16, attn_heads=2)
    return sections.BenchConfig(**{**base, **kw})


def test_attention_rows_time_windowed_and_full_models(spec):
    out = sections.run_attention(_cfg(spec, attn_grids=((5, 16, 16),)))
    row = out["grids"][0]
    assert row["windowed"]["st_window"] == [5, 8, 8] and row["full"]["st_window"] == [5, 16, 16]
    assert row["windowed"]["spatial_window"] == row["full"]["spatial_window"] == [1, 16, 16]
    assert row["speedup"] == row["full"]["timing"]["median_s"] / row["windowed"]["timing"]["median_s"]
    assert (
        row["memory_ratio"] == row["full"]["memory"]["step_bytes"] / row["windowed"]["memory"]["step_bytes"]
    )
    # full attention over 1280 tokens does more work than 5x8x8 windows
    assert row["full"]["train_flops_per_sample"] > row["windowed"]["train_flops_per_sample"]


def test_denoiser_mfu_uses_the_models_flop_count_and_the_measured_peak(spec):
    from walt_bench.denoiser.info import forward_flops
    from walt_bench.denoiser.model import build_denoiser

    out = sections.run_denoiser(_cfg(spec), peak=1e9)
    fwd = forward_flops(build_denoiser(spec))["total"]
    assert out["train_flops_per_sample"] == pytest.approx(4 * fwd)  # 3 x forward + self-conditioning pass
    assert out["mfu"] == pytest.approx(out["train_flops_per_sample"] * out["samples_per_s"]["median"] / 1e9)
    assert out["tokens_per_s"]["median"] == pytest.approx(out["samples_per_s"]["median"] * 5 * 8 * 8)
    assert out["memory"]["step_bytes"] > 0


def test_train_step_flops_count_the_self_conditioning_pass_only_when_it_ran():
    ts = sections.TrainStep(lambda: None, torch.nn.Identity(), 10.0, 1, {"sc_rate": 0.0})
    assert ts.flops_per_sample == 30.0
    ts.state["sc_rate"] = 0.5
    assert ts.flops_per_sample == 40.0


def test_attention_kernels_names_the_sdpa_backend():
    q = torch.randn(1, 2, 8, 4)
    bias = torch.zeros(2, 8, 8)
    fn = torch.nn.functional.scaled_dot_product_attention
    assert sections.attention_kernels(lambda: fn(q, q, q, attn_mask=bias)) == ["math"]


def test_autoencoder_flops_are_counted_on_the_meta_device(spec):
    flops = sections.autoencoder_forward_flops(spec.tokenizer, (17, 3, 32, 32))
    assert flops > 0 and flops == sections.autoencoder_forward_flops(spec.tokenizer, (17, 3, 32, 32))
    # twice the frame area, twice the convolution work
    assert sections.autoencoder_forward_flops(spec.tokenizer, (17, 3, 32, 64)) == pytest.approx(2 * flops)


def test_unknown_sections_are_refused(spec):
    with pytest.raises(ValueError, match="unknown section"):
        sections.run_bench(_cfg(spec), ("speed",))
