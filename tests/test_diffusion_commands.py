"""`walt-bench train` from a latent cache and `walt-bench sample` end to end, with the real tiny WALT denoiser
and engine (a randomly initialised tokenizer stands in for a trained one when decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from walt_bench.spec import load_spec

SMOKE = [
    "data.height=32",
    "data.width=32",
    "data.num_classes=3",
    "model.size=tiny",
    "tokenizer.channels=8",
    "tokenizer.num_groups=4",
    "tokenizer.num_res_blocks=1",
    "train.steps=4",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.log_every=2",
    "train.ckpt_every=4",
    "tracking.enabled=false",
    "diffusion.sample_steps=3",
    "run.device=cpu",
    "run.name=t",
]


@pytest.fixture()
def cache(tmp_path):
    from walt_bench.data.latents import write_latent_cache

    g = torch.Generator().manual_seed(0)
    latents = torch.randn(12, 5, 8, 4, 4, generator=g) * 2 + 1
    batches = [
        {
            "latent": latents[i : i + 4],
            "label": torch.arange(i, i + 4) % 3,
            "is_image": torch.zeros(4, dtype=torch.bool),
            "index": torch.arange(i, i + 4),
        }
        for i in range(0, 12, 4)
    ]
    write_latent_cache(tmp_path / "cache", batches)
    return tmp_path / "cache"


def test_train_from_cache_then_sample_writes_the_contract_outputs(tmp_path, cache, monkeypatch):
    from walt_bench.cli import main
    from walt_bench.diffusion import sample as sample_mod
    from walt_bench.tokenizer.model import CausalAutoencoder

    over = SMOKE + [f"tokenizer.cache_dir={cache}", f"run.out_dir={tmp_path / 'runs'}"]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"base: {Path('experiments/base/default.yaml').resolve()}\n")
    assert main(["train", "--spec", str(spec_file), "--no-progress", *over]) == 0
    spec = load_spec(spec_file, over)
    run_dir = tmp_path / "runs" / f"t-{spec.hash}"
    summary = json.loads((run_dir / "summary.json").read_text())
    ckpt = summary["last_checkpoint"]
    assert summary["final_step"] == 4 and np.isfinite(summary["final_loss"])
    # the cache's stats were trained with and are saved with the weights
    state = torch.load(ckpt, weights_only=True)["parts"]["denoiser"]["model"]
    assert not torch.allclose(state["normalizer.mean"], torch.zeros(8))

    def untrained_tokenizer(s, device):
        torch.manual_seed(0)  # the same stand-in weights in both sampling runs
        return CausalAutoencoder(s.tokenizer).eval()

    monkeypatch.setattr(sample_mod, "_load_tokenizer", untrained_tokenizer)
    out = tmp_path / "samples"
    args = ["sample", "--spec", str(spec_file), "--ckpt", ckpt, "--num", "3", "--out", str(out)]
    assert main([*args, "--batch-size", "2", "--seed", "5", "--no-progress", *over]) == 0
    data = np.load(out / "samples.npz")
    assert data["videos"].dtype == np.uint8 and data["videos"].shape == (3, 17, 32, 32, 3)
    assert data["labels"].dtype == np.int64 and data["labels"].shape == (3,)
    record = json.loads((out / "samples.json").read_text())
    assert record["spec_hash"] == spec.hash and record["weights"] == "ema" and record["seed"] == 5
    assert (out / "grid.gif").stat().st_size > 0 and len(list((out / "videos").glob("*.mp4"))) == 3
    # same seed, same clips
    out2 = tmp_path / "samples2"
    args2 = ["sample", "--spec", str(spec_file), "--ckpt", ckpt, "--num", "3", "--out", str(out2)]
    assert main([*args2, "--batch-size", "2", "--seed", "5", "--no-progress", *over]) == 0
    assert np.array_equal(np.load(out2 / "samples.npz")["videos"], data["videos"])


def test_train_without_latents_says_what_to_set(tmp_path):
    from walt_bench.diffusion.train import run_train
    from walt_bench.errors import UserError

    spec = load_spec(None, SMOKE + [f"run.out_dir={tmp_path}"])
    with pytest.raises(UserError, match="tokenizer.cache_dir"):
        run_train(spec, progress=False)


def test_super_resolution_stage_trains_on_the_fly_with_estimated_stats(tmp_path, monkeypatch):
    """No cache: clips are encoded by the frozen tokenizer; the SR stage's low-res latent is the clip
    downsampled 2x and encoded; latent stats are estimated from a few batches."""
    from walt_bench.data.synthetic import synthesize
    from walt_bench.diffusion import train as train_mod
    from walt_bench.tokenizer.model import CausalAutoencoder

    root = synthesize(tmp_path / "syn", videos=3, seed=0, num_classes=2, frames=20, size=32)
    over = SMOKE + [
        f"data.root={root}",
        "data.num_classes=2",
        "data.split=train",
        "data.num_workers=0",
        "model.lowres_condition=true",
        "train.steps=2",
        "train.ckpt_every=2",
        "diffusion.norm_stats_batches=2",
        f"run.out_dir={tmp_path / 'runs'}",
    ]
    spec = load_spec(None, over)
    seen = []

    def tokenizer(s):
        torch.manual_seed(0)
        tok = CausalAutoencoder(s.tokenizer)
        original = tok.encode
        tok.encode = lambda v: seen.append(tuple(v.shape)) or original(v)
        return tok

    monkeypatch.setattr(train_mod, "_tokenizer", tokenizer)
    result = train_mod.run_train(spec, progress=False)
    assert result.summary["final_step"] == 2 and np.isfinite(result.summary["final_loss"])
    assert (4, 17, 3, 16, 16) in seen and (4, 17, 3, 32, 32) in seen  # low-res and full-res clips
    assert not torch.allclose(result.modules["denoiser"].normalizer.std, torch.ones(8))
