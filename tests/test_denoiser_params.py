"""Parameter counts against the paper (Tables 3d, 4), FLOPs accounting, size registry, model specs, CLI."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from walt_bench.denoiser.config import DenoiserConfig, SizeName
from walt_bench.denoiser.info import count_parameters, forward_flops, model_info
from walt_bench.denoiser.model import WALT
from walt_bench.denoiser.sizes import SIZES

ROOT = Path(__file__).resolve().parents[1]
UCF = dict(latent_channels=8, latent_size=(5, 16, 16), num_classes=101)  # c=8, p=1, 17x128x128 clips


def params_millions(**cfg) -> float:
    with torch.device("meta"):
        model = WALT(DenoiserConfig(**cfg), **UCF)
    return count_parameters(model)["total"] / 1e6


@pytest.mark.parametrize(
    "cfg, paper",
    [
        (dict(size="L", lora_rank=2), 313),
        (dict(size="L", lora_rank=4), 314),
        (dict(size="L", lora_rank=16), 316),
        (dict(size="L", lora_rank=64), 324),
        (dict(size="L", lora_rank=256), 357),
        (dict(size="L", adaln="separate"), 458),
        (dict(size="XL", lora_rank=2), 460),
    ],
    ids=["L-r2", "L-r4", "L-r16", "L-r64", "L-r256", "L-separate", "XL-r2"],
)
def test_parameter_count_matches_paper(cfg, paper):
    assert params_millions(**cfg) == pytest.approx(paper, rel=0.01)


def test_parameter_counts_round_to_the_papers_numbers():
    counts = [round(params_millions(size="L", lora_rank=r)) for r in (2, 4, 16, 64, 256)]
    assert counts == [313, 314, 316, 324, 357]  # Table 3d, every entry


def test_parts_add_up_to_total():
    with torch.device("meta"):
        model = WALT(DenoiserConfig(size="B", text_dim=64), **UCF)
    counts = count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert counts["cross_attention"] > 0 and counts["adaln"] > 0


def test_registry_names_are_the_config_choices():
    assert set(SIZES) == set(typing.get_args(SizeName))
    assert (SIZES["L"].depth, SIZES["L"].hidden_size, SIZES["L"].num_heads) == (24, 1024, 16)
    assert (SIZES["XL"].depth, SIZES["XL"].hidden_size, SIZES["XL"].num_heads) == (28, 1152, 16)


@pytest.mark.parametrize("text_dim", [None, 12])
def test_analytic_flops_match_a_flop_counter(text_dim):
    cfg = DenoiserConfig(size="tiny", st_window=(3, 2, 2), text_dim=text_dim, cross_attention="all")
    model = WALT(cfg, latent_channels=4, latent_size=(3, 4, 4), num_classes=5)
    text = torch.randn(1, 6, 12) if text_dim else None
    # the math backend decomposes attention into counted matmuls (CPU flash attention counts as 0)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 4, 4, 4), torch.rand(1), class_labels=torch.tensor([1]), text=text)
    analytic = forward_flops(model, text_len=6 if text_dim else 0)["total"]
    assert analytic == pytest.approx(counter.get_total_flops(), rel=0.02)
    assert model.flops_per_sample(text_len=6 if text_dim else 0) == pytest.approx(3 * analytic)


def test_model_info_of_the_paper_default():
    with torch.device("meta"):
        model = WALT(DenoiserConfig(), **UCF)
    info = model_info(model)
    assert info["tokens_per_sample"] == 5 * 16 * 16
    assert info["geometry"]["st_window"] == [5, 8, 8] and info["geometry"]["spatial_window"] == [1, 16, 16]
    # forward FLOPs ~ 2 x params x tokens plus attention scores
    assert info["forward_flops_per_sample"] > 2 * info["params"]["total"] * 1280 * 0.95
    assert info["train_flops_per_sample"] == 3 * info["forward_flops_per_sample"]


MODEL_SPECS = sorted((ROOT / "experiments" / "models").glob("walt-*.yaml"))


def test_every_size_has_a_model_spec():
    names = {p.stem for p in MODEL_SPECS}
    assert {
        "walt-tiny",
        "walt-S",
        "walt-B",
        "walt-L",
        "walt-XL",
        "walt-t2v-base",
        "walt-t2v-sr1",
        "walt-t2v-sr2",
    } <= names


@pytest.mark.parametrize("path", MODEL_SPECS, ids=lambda p: p.stem)
def test_model_specs_build(path):
    from walt_bench.denoiser.model import build_denoiser
    from walt_bench.spec import load_spec

    spec = load_spec(path)
    model = build_denoiser(spec, device="meta")
    expected = {
        "walt-L": 313,
        "walt-XL": 460,
        "walt-t2v-sr1": 1300,
        "walt-t2v-sr2": 419,
        "walt-t2v-base": 3300,
    }
    if path.stem in expected:
        assert count_parameters(model)["total"] / 1e6 == pytest.approx(expected[path.stem], rel=0.02)


def test_model_info_command(capsys):
    import argparse

    from walt_bench.denoiser.commands import _model_info, register  # noqa: F401

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["model", "info", "--spec", str(ROOT / "experiments/models/walt-L.yaml"), "model.lora_rank=16"]
    )
    assert args.handler(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert round(result["params"]["total"] / 1e6) == 316
    assert len(result["spec_hash"]) == 12 and "torch" in result["versions"]
