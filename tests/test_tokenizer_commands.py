"""`walt-bench tokenizer train|encode|eval` end to end on a tiny synthetic dataset (engine loop, CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from walt_bench.cli import main
from walt_bench.data.latents import LatentCache
from walt_bench.errors import CheckpointError
from walt_bench.spec import load_spec
from walt_bench.tokenizer.build import load_tokenizer, tokenizer_hash


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-class synthetic dataset and overrides for a 4-channel tokenizer trained for 2 steps."""
    from walt_bench.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("tok")
    synthesize(root / "data", videos=3, num_classes=2, frames=9, size=16)
    overrides = [
        f"data.root={root / 'data'}",
        "data.num_classes=2",
        "data.num_frames=5",
        "data.height=16",
        "data.width=16",
        "data.num_workers=0",
        "data.clip_sampling=start",
        "tokenizer.f_s=2",
        "tokenizer.f_t=2",
        "tokenizer.channels=4",
        "tokenizer.channel_multipliers=[1,2]",
        "tokenizer.num_res_blocks=1",
        "tokenizer.num_groups=2",
        "tokenizer.discriminator_channels=4",
        "tokenizer.discriminator_multipliers=[1,1]",
        "tokenizer.discriminator_start_step=1",
        "tokenizer.perceptual_weight=0",
        "tokenizer.cache_shard_size=2",
        "tokenizer.eval_split=test",
        "tokenizer.eval_clips=2",
        "tokenizer.train.steps=2",
        "tokenizer.train.batch_size=2",
        "tokenizer.train.warmup_steps=0",
        "tokenizer.train.log_every=1",
        "tokenizer.train.ckpt_every=2",
        "tracking.enabled=false",
        f"run.out_dir={root / 'runs'}",
        "run.device=cpu",
        "run.name=tiny",
    ]
    spec_file = root / "spec.yaml"
    spec_file.write_text("run:\n  name: tiny\n")
    assert main(["tokenizer", "train", "--spec", str(spec_file), *overrides]) == 0
    return root, spec_file, overrides


def test_train_writes_a_checkpoint_with_both_parts(tiny):
    root, spec_file, overrides = tiny
    spec = load_spec(spec_file, overrides)
    run_dir = root / "runs" / f"tokenizer-{tokenizer_hash(spec)}"
    ckpt = torch.load(run_dir / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert set(ckpt["parts"]) == {"autoencoder", "discriminator"}
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert "autoencoder/rec" in steps[0] and "discriminator/d" not in steps[0]  # the GAN starts at step 1
    assert "discriminator/d" in steps[1] and "autoencoder/g_adv" in steps[1]
    assert any("val/psnr" in r for r in records)


def test_load_tokenizer_finds_the_runs_checkpoint_and_encodes(tiny):
    _, spec_file, overrides = tiny
    model = load_tokenizer(load_spec(spec_file, overrides))
    assert not model.training
    assert model.encode(torch.zeros(1, 5, 3, 16, 16)).shape == (1, 3, 8, 8, 8)


def test_load_tokenizer_without_a_checkpoint_is_a_checkpoint_error(tiny, tmp_path):
    _, spec_file, overrides = tiny
    with pytest.raises(CheckpointError, match="tokenizer train"):
        load_tokenizer(load_spec(spec_file, [*overrides, f"run.out_dir={tmp_path}"]))


def test_encode_writes_a_cache_of_every_clip(tiny, capsys):
    root, spec_file, overrides = tiny
    out = root / "cache"
    assert main(["tokenizer", "encode", "--spec", str(spec_file), "--out", str(out), *overrides]) == 0
    cache = LatentCache(out)
    assert len(cache) == 4  # 2 classes x 2 train videos (fold 1 tests one of the 3 groups)
    assert cache[0]["latent"].shape == (3, 8, 8, 8) and cache.mean.shape == (8,)
    spec = load_spec(spec_file, overrides)
    from walt_bench.hashing import file_sha256
    from walt_bench.identity import stage_identity
    from walt_bench.tokenizer.build import resolve_checkpoint

    made_with = cache.manifest["tokenizer"]
    assert made_with["sha256"] == file_sha256(resolve_checkpoint(spec)) and made_with["step"] == 2
    assert made_with["identity"] == tokenizer_hash(spec) and made_with["checkpoint"] == str(
        resolve_checkpoint(spec)
    )
    assert cache.manifest["identity"] == stage_identity(spec.to_dict(), "latents")
    model = load_tokenizer(spec)
    from walt_bench.data.loader import build_dataset

    first = build_dataset(spec.data)[0]["video"][None]
    torch.testing.assert_close(cache[0]["latent"], model.encode(first)[0], rtol=1e-5, atol=1e-5)


def test_eval_reports_psnr_ssim_and_why_rfvd_is_missing(tiny, tmp_path):
    _, spec_file, overrides = tiny
    assert main(["tokenizer", "eval", "--spec", str(spec_file), "--out", str(tmp_path), *overrides]) == 0
    result = json.loads((tmp_path / "tokenizer_eval.json").read_text())
    assert result["num_clips"] == 2 and result["spec_hash"] == load_spec(spec_file, overrides).hash
    assert result["psnr"]["mean"] > 0 and -1 <= result["ssim"]["mean"] <= 1
    assert result["rfvd"] is None and result["rfvd_note"]
    assert (tmp_path / "reconstructions.png").is_file()


def test_a_spec_with_another_run_name_finds_the_same_tokenizer(tiny):
    _, spec_file, overrides = tiny
    spec = load_spec(spec_file, [*overrides, "run.name=diffusion", "model.patch_size=2"])
    assert load_tokenizer(spec).encode(torch.zeros(1, 1, 3, 16, 16)).shape == (1, 1, 8, 8, 8)


def test_val_psnr_is_measured_on_clips_of_the_eval_split(tiny):
    """The tokenizer's val/psnr batch comes from tokenizer.eval_split (held out), not from the training clips."""
    from walt_bench.data.loader import build_dataset
    from walt_bench.tokenizer.train import held_out_clips

    _, spec_file, overrides = tiny
    spec = load_spec(spec_file, overrides)
    clips = held_out_clips(spec, 2)
    test = build_dataset(spec.data.model_copy(update={"clip_sampling": "center"}), split="test")
    torch.testing.assert_close(clips, torch.stack([test[i]["video"] for i in range(2)]))
