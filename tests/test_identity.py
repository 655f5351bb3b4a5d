"""Stage identities: each stage is keyed by exactly the fields that can change its output, and every shipped
spec that should share a tokenizer resolves to the same one."""

from __future__ import annotations

from pathlib import Path

import pytest

from walt_bench.identity import (
    identity_fields,
    metrics_identity,
    samples_identity,
    stage_dir,
    stage_identity,
)
from walt_bench.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "experiments"


def ids(overrides=(), path=None):
    d = load_spec(path, list(overrides)).to_dict()
    return {s: stage_identity(d, s) for s in ("tokenizer", "latents", "diffusion")}


@pytest.mark.parametrize(
    "override",
    [
        "diffusion.sample_steps=10",
        "diffusion.timestep_spacing=linspace",
        "diffusion.eta=0.5",
        "eval.protocol=synthetic_fvd",
        "eval.num_samples=64",
        "run.device=cpu",
        "run.name=other",
        "run.out_dir=elsewhere",
        "train.compile=true",
        "train.log_every=1",
        "train.ckpt_every=7",
        "train.keep_last=9",
        "train.parallel=fsdp",
        "train.activation_checkpointing=true",
        "train.max_bad_steps=9",
        "tracking.enabled=false",
        "data.num_workers=7",
        "description=prose",
    ],
)
def test_fields_that_cannot_change_a_trained_model_leave_every_identity_alone(override):
    assert ids([override]) == ids()


@pytest.mark.parametrize(
    ("override", "changed"),
    [
        ("model.lora_rank=16", {"diffusion"}),
        ("diffusion.p_sc=0.3", {"diffusion"}),
        ("diffusion.zero_terminal_snr=false", {"diffusion"}),
        ("train.lr=0.0001", {"diffusion"}),
        ("train.steps=100", {"diffusion"}),
        ("run.seed=1", {"tokenizer", "latents", "diffusion"}),
        ("data.num_classes=10", {"diffusion"}),
        ("tokenizer.latent_channels=4", {"tokenizer", "latents", "diffusion"}),
        ("tokenizer.train.lr=0.001", {"tokenizer", "latents", "diffusion"}),
        ("data.clip_sampling=center", {"tokenizer", "latents", "diffusion"}),
        ("tokenizer.checkpoint=/x/step.pt", {"latents", "diffusion"}),
        ("tokenizer.eval_clips=5", set()),
    ],
)
def test_a_field_changes_exactly_the_stages_it_determines(override, changed):
    before, after = ids(), ids([override])
    assert {s for s in before if before[s] != after[s]} == changed


def test_train_steps_is_not_identity_under_a_constant_schedule():
    """A constant-LR run of N steps is the start of a longer one, so extending it resumes the same run."""
    assert ids(["train.lr_schedule=constant", "train.steps=100"]) == ids(["train.lr_schedule=constant"])


def test_encoding_on_the_fly_builds_the_diffusion_run_on_the_tokenizer_and_the_data():
    on_the_fly = ["diffusion.latent_source=encode"]
    assert ids(on_the_fly)["diffusion"] != ids()["diffusion"]
    fields = identity_fields(load_spec(None, on_the_fly).to_dict(), "diffusion")
    assert "data.image_ratio" in fields and "tokenizer.channels" in fields


def test_another_encoded_split_keeps_the_tokenizer():
    spec = load_spec(None)
    d = spec.to_dict()
    assert stage_identity(d, "latents", split="test") != stage_identity(d, "latents")
    assert stage_dir(spec, "latents", split="test").name.startswith("latents-")


def test_samples_and_metrics_identities_follow_their_own_fields():
    d = load_spec(None).to_dict()
    base = samples_identity("abc", 100, d, seed=0, num=64)
    assert samples_identity("abc", 200, d, seed=0, num=64) != base  # another checkpoint step
    assert samples_identity("abc", 100, d, seed=1, num=64) != base
    assert samples_identity("abc", 100, d, seed=0, num=32) != base
    d2 = load_spec(None, ["diffusion.sample_steps=10"]).to_dict()
    assert samples_identity("abc", 100, d2, seed=0, num=64) != base
    d3 = load_spec(None, ["eval.repeats=2"]).to_dict()
    assert samples_identity("abc", 100, d3, seed=0, num=64) == base
    assert metrics_identity(base, d3) != metrics_identity(base, d)
    d4 = load_spec(None, ["eval.batch_size=3", "eval.cache_dir=x"]).to_dict()
    assert metrics_identity(base, d4) == metrics_identity(base, d)


# -- shipped specs ---------------------------------------------------------------------------------
def _tokenizer_spec_for(spec) -> Path:
    c, dataset = spec.tokenizer.latent_channels, spec.data.dataset
    if dataset == "ucf101":
        return EXP / "tokenizers" / ("ucf101.yaml" if c == 8 else f"ucf101-c{c}.yaml")
    return EXP / "tokenizers" / f"{dataset}.yaml"


PAPER_SPECS = sorted([*(EXP / "tables").glob("*.yaml"), *(EXP / "ablations").glob("*.yaml")])


@pytest.mark.parametrize("path", PAPER_SPECS, ids=lambda p: p.name)
def test_every_paper_spec_finds_the_tokenizer_of_its_tokenizer_spec(path):
    spec = load_spec(path)
    tok_spec = load_spec(_tokenizer_spec_for(spec))
    assert stage_identity(spec.to_dict(), "tokenizer") == stage_identity(tok_spec.to_dict(), "tokenizer")


@pytest.mark.parametrize("scale", ["smoke", "small"])
def test_at_every_scale_the_ablations_of_one_latent_width_share_one_tokenizer(scale):
    by_c: dict[int, set[str]] = {}
    for path in (EXP / "ablations").glob("*.yaml"):
        spec = load_spec(path, scale=scale)
        by_c.setdefault(spec.tokenizer.latent_channels, set()).add(
            stage_identity(spec.to_dict(), "tokenizer")
        )
    assert sorted(by_c) == [4, 8, 16, 32] and all(len(v) == 1 for v in by_c.values())


@pytest.mark.parametrize("path", sorted((EXP / "tokenizers").glob("*.yaml")), ids=lambda p: p.name)
def test_each_tokenizer_spec_trains_with_adam_cosine_and_no_ema_as_table_8_states(path):
    tcfg = load_spec(path).tokenizer.train
    assert (tcfg.optimizer, tcfg.lr, tcfg.lr_schedule, tcfg.ema, tcfg.batch_size) == (
        "adam",
        1e-4,
        "cosine",
        False,
        256,
    )


def test_a_partial_tokenizer_train_override_keeps_the_tokenizer_defaults():
    tcfg = load_spec(None, ["tokenizer.train.steps=10"]).tokenizer.train
    assert (tcfg.steps, tcfg.optimizer, tcfg.lr, tcfg.ema) == (10, "adam", 1e-4, False)
