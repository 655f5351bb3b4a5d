"""The tokenizer specs under experiments/tokenizers/ load and give Table 8's geometry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from walt_bench.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "experiments" / "tokenizers"


@pytest.mark.parametrize(
    "name, latent, channels, multipliers",
    [
        ("ucf101", (5, 16, 16), 8, [1, 2, 2, 4]),
        ("kinetics600", (5, 16, 16), 8, [1, 2, 2, 4]),
        ("imagenet", (1, 32, 32), 8, [1, 1, 2, 4]),
        ("ucf101-c4", (5, 16, 16), 4, [1, 2, 2, 4]),
        ("ucf101-c8", (5, 16, 16), 8, [1, 2, 2, 4]),
        ("ucf101-c16", (5, 16, 16), 16, [1, 2, 2, 4]),
        ("ucf101-c32", (5, 16, 16), 32, [1, 2, 2, 4]),
    ],
)
def test_tokenizer_spec_loads_with_its_table_8_geometry(name, latent, channels, multipliers):
    path = SPECS / f"{name}.yaml"
    assert yaml.safe_load(path.read_text())["base"] == "../base/default.yaml"
    spec = load_spec(path)
    assert spec.latent_shape == latent
    assert spec.tokenizer.latent_channels == channels
    assert spec.tokenizer.channel_multipliers == multipliers
