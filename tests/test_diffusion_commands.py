"""`walt-bench train` from a latent cache and `walt-bench sample` end to end, with the real tiny WALT denoiser
and engine (a randomly initialised tokenizer stands in for a trained one when decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from walt_bench.diffusion.export import load_samples
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


def write_cache(path, spec, tokenizer: dict | None = None):
    """A 12-clip latent cache recorded as made by ``spec``'s tokenizer (or by ``tokenizer``)."""
    from walt_bench.data.latents import write_latent_cache
    from walt_bench.identity import stage_identity

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
    made_with = tokenizer or {
        "identity": stage_identity(spec.to_dict(), "tokenizer"),
        "checkpoint": "stand-in.pt",
        "sha256": "0" * 64,
    }
    write_latent_cache(path, batches, metadata={"tokenizer": made_with})
    return path


@pytest.fixture()
def trained(tmp_path, monkeypatch):
    """A 4-step diffusion run from a cache; sampling decodes with a seeded random tokenizer."""
    from walt_bench.cli import main
    from walt_bench.diffusion import sample as sample_mod
    from walt_bench.tokenizer.model import CausalAutoencoder

    over = SMOKE + [f"tokenizer.cache_dir={tmp_path / 'cache'}", f"run.out_dir={tmp_path / 'runs'}"]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"base: {Path('experiments/base/default.yaml').resolve()}\n")
    spec = load_spec(spec_file, over)
    write_cache(tmp_path / "cache", spec)
    assert main(["train", "--spec", str(spec_file), "--no-progress", *over]) == 0

    def untrained_tokenizer(s, provenance, device):
        torch.manual_seed(0)  # the same stand-in weights in every sampling run
        return CausalAutoencoder(s.tokenizer).eval(), provenance["tokenizer"]["checkpoint"]

    monkeypatch.setattr(sample_mod, "trained_tokenizer", untrained_tokenizer)
    return spec_file, over, spec


def test_train_from_cache_then_sample_writes_the_contract_outputs(tmp_path, trained):
    from walt_bench.cli import main
    from walt_bench.identity import stage_dir

    spec_file, over, spec = trained
    run_dir = stage_dir(spec, "diffusion")
    summary = json.loads((run_dir / "summary.json").read_text())
    ckpt = summary["last_checkpoint"]
    assert summary["final_step"] == 4 and np.isfinite(summary["final_loss"])
    assert summary["provenance"]["tokenizer"]["checkpoint"] == "stand-in.pt"
    assert summary["provenance"]["latents"]["path"] == str(tmp_path / "cache")
    # the cache's stats were trained with and are saved with the weights
    state = torch.load(ckpt, weights_only=True)["parts"]["denoiser"]["model"]
    assert not torch.allclose(state["normalizer.mean"], torch.zeros(8))

    out = tmp_path / "samples"
    args = ["sample", "--spec", str(spec_file), "--ckpt", ckpt, "--num", "3", "--out", str(out)]
    assert main([*args, "--batch-size", "2", "--seed", "5", "--no-progress", *over]) == 0
    videos, labels = load_samples(out)
    assert videos.dtype == np.uint8 and videos.shape == (3, 17, 32, 32, 3)
    assert labels.dtype == np.int64 and labels.shape == (3,)
    record = json.loads((out / "samples.json").read_text())
    assert record["diffusion_identity"] == run_dir.name.removeprefix("diffusion-") and record["step"] == 4
    assert (
        record["weights"] == "ema" and record["seed"] == 5 and record["tokenizer_checkpoint"] == "stand-in.pt"
    )
    assert (out / "grid.gif").stat().st_size > 0 and len(list((out / "videos").glob("*.mp4"))) == 3
    # same seed, same clips
    out2 = tmp_path / "samples2"
    args2 = ["sample", "--spec", str(spec_file), "--ckpt", ckpt, "--num", "3", "--out", str(out2)]
    assert main([*args2, "--batch-size", "2", "--seed", "5", "--no-progress", *over]) == 0
    assert np.array_equal(load_samples(out2)[0], videos)


def test_sampling_and_eval_overrides_find_the_trained_run_without_ckpt(tmp_path, trained, capsys):
    from walt_bench.cli import main
    from walt_bench.identity import samples_dir

    spec_file, over, spec = trained
    changed = [*over, "diffusion.sample_steps=2", "diffusion.eta=0.5", "eval.repeats=3", "train.compile=true"]
    args = ["sample", "--spec", str(spec_file), "--num", "2", "--no-progress", *changed]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    out = samples_dir(spec, record["identity"])
    assert (out / "shards" / "shard_00000.npz").is_file()
    assert json.loads((out / "samples.json").read_text())["sample_steps"] == 2
    assert main(args) == 0 and "reusing them" in capsys.readouterr().out  # the same identity is not redone


def test_sample_refuses_a_checkpoint_trained_with_other_diffusion_settings(tmp_path, trained, capsys):
    from walt_bench.cli import main
    from walt_bench.diffusion.sample import latest_run_checkpoint

    spec_file, over, spec = trained
    ckpt = str(latest_run_checkpoint(spec))
    args = ["sample", "--spec", str(spec_file), "--ckpt", ckpt, "--num", "2", "--no-progress", *over]
    args += ["diffusion.zero_terminal_snr=false", f"run.out_dir={tmp_path / 'other'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "diffusion.zero_terminal_snr: recorded True, spec False" in err and "--allow-spec-mismatch" in err
    with pytest.warns(UserWarning, match="zero_terminal_snr"):
        assert main([*args, "--allow-spec-mismatch"]) == 0


def test_train_refuses_a_cache_made_by_another_tokenizer(tmp_path, capsys):
    from walt_bench.cli import main
    from walt_bench.identity import stage_identity

    over = SMOKE + [f"tokenizer.cache_dir={tmp_path / 'cache'}", f"run.out_dir={tmp_path / 'runs'}"]
    spec = load_spec(None, over)
    other = {
        "identity": "0123456789ab",
        "checkpoint": "runs/tokenizer-0123456789ab/step.pt",
        "sha256": "1" * 64,
    }
    write_cache(tmp_path / "cache", spec, tokenizer=other)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("run:\n  name: t\n")
    assert main(["train", "--spec", str(spec_file), "--no-progress", *over]) == 2
    err = capsys.readouterr().err
    assert "tokenizer 0123456789ab" in err and stage_identity(spec.to_dict(), "tokenizer") in err


def test_train_without_latents_says_what_to_run(tmp_path):
    from walt_bench.diffusion.train import run_train
    from walt_bench.errors import UserError

    spec = load_spec(None, SMOKE + [f"run.out_dir={tmp_path}"])
    with pytest.raises(UserError, match="walt-bench tokenizer encode"):
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
        "diffusion.latent_source=encode",
        "train.steps=2",
        "train.ckpt_every=2",
        "diffusion.norm_stats_batches=2",
        f"run.out_dir={tmp_path / 'runs'}",
    ]
    spec = load_spec(None, over)
    seen = []

    def tokenizer(s, checkpoint=None):
        torch.manual_seed(0)
        tok = CausalAutoencoder(s.tokenizer)
        original = tok.encode
        tok.encode = lambda v: seen.append(tuple(v.shape)) or original(v)
        return tok

    from walt_bench.tokenizer import build, encode

    monkeypatch.setattr(build, "load_tokenizer", tokenizer)
    monkeypatch.setattr(build, "resolve_checkpoint", lambda s, c=None: tmp_path / "stand-in.pt")
    monkeypatch.setattr(encode, "tokenizer_provenance", lambda s, c: {"checkpoint": str(c)})
    result = train_mod.run_train(spec, progress=False)
    assert result.summary["final_step"] == 2 and np.isfinite(result.summary["final_loss"])
    assert (4, 17, 3, 16, 16) in seen and (4, 17, 3, 32, 32) in seen  # low-res and full-res clips
    assert not torch.allclose(result.modules["denoiser"].normalizer.std, torch.ones(8))
