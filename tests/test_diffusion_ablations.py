"""Table 3 specs: each ablation spec changes exactly its own field, and each switch of Table 3c/3e changes the
computation of the real (tiny) W.A.L.T model + objective."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import torch

from walt_bench.diffusion.train import build_model, build_objective
from walt_bench.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = sorted((ROOT / "experiments" / "ablations").glob("table3*.yaml"))
TABLES = sorted((ROOT / "experiments" / "tables").glob("*.yaml"))
TINY = ["model.size=tiny", "data.num_classes=3"]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_every_table_spec_validates():
    assert len(TABLES) >= 4 and len(ABLATIONS) == 24
    for path in TABLES + ABLATIONS:
        load_spec(path)


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.stem)
def test_ablation_spec_differs_from_the_default_only_in_its_knob(path):
    base = _flat(load_spec(ROOT / "experiments" / "base" / "default.yaml").to_dict())
    spec = _flat(load_spec(path).to_dict())
    changed = {k for k in spec if spec[k] != base[k]} - {"description", "run.name", "train.steps"}
    allowed = {
        "table3a": {"model.patch_size", "model.st_window"},
        "table3b": {"model.st_window"},
        "table3c": {"diffusion.p_sc"},
        "table3d": {"model.lora_rank"},
        "table3e": {"model.qk_norm", "diffusion.latent_norm", "diffusion.zero_terminal_snr"},
        "table3f": {"tokenizer.latent_channels"},
    }[path.stem[:7]]
    assert changed <= allowed and spec["train.steps"] == 35000


def _loss(overrides: list[str], z0: torch.Tensor) -> torch.Tensor:
    spec = load_spec(None, TINY + overrides)
    model = build_model(spec)
    with torch.no_grad():  # DiT-style zero-initialised output layers make every input irrelevant at init;
        for name, p in model.named_parameters():  # seeded by name: shared weights are equal across variants
            p.copy_(
                torch.randn(p.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode()))) * 0.2
            )
    model.normalizer.set_stats(torch.full((8,), 0.5), torch.full((8,), 2.0))
    objective = build_objective(spec)
    loss, _ = objective(
        model,
        model.normalizer.normalize(z0),
        labels=torch.tensor([0, 1]),
        generator=torch.Generator().manual_seed(0),
    )
    return loss


@pytest.mark.parametrize(
    "switch",
    [
        "diffusion.p_sc=0.0",
        "model.qk_norm=false",
        "diffusion.latent_norm=false",
        "diffusion.zero_terminal_snr=false",
    ],
)
def test_table3_switch_changes_the_loss(switch):
    z0 = torch.randn(2, 5, 8, 16, 16, generator=torch.Generator().manual_seed(1))
    full = _loss(["diffusion.p_sc=0.9"], z0)
    ablated = _loss(["diffusion.p_sc=0.9", switch], z0)
    assert torch.isfinite(ablated) and not torch.allclose(full, ablated)


def test_real_walt_takes_mixed_image_video_batches():
    spec = load_spec(None, TINY + ["model.frame_condition=true", "diffusion.p_fp=0.5"])
    model, objective = build_model(spec), build_objective(spec)
    z0 = torch.randn(3, 5, 8, 16, 16)
    loss, stats = objective(
        model, z0, labels=torch.tensor([0, 1, 3]), is_image=torch.tensor([True, False, True]),
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    loss.backward()
    assert torch.isfinite(loss) and model.denoiser.patch_embed.weight.grad is not None
