"""Specs: YAML + base inheritance, overrides, hashing, and validation that lists every problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from walt_bench.cli import main
from walt_bench.errors import SpecError
from walt_bench.spec import ExperimentSpec, load_spec, spec_fields

REPO = Path(__file__).resolve().parents[1]
ALL_SPECS = sorted(
    p for p in (REPO / "experiments").rglob("*.yaml") if p.parent.name not in ("scales", "studies")
)
# Partial specs merged by others through `base:` (a dataset section alone) are complete specs too,
# because every section has defaults.


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path, overrides=()) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path, list(overrides))
    return info.value.problems


def test_defaults_are_the_paper_ucf101_setting():
    spec = load_spec()
    assert spec.latent_shape == (5, 16, 16)
    assert spec.tokenizer.latent_channels == 8
    assert (spec.model.patch_size, spec.model.st_window, spec.model.lora_rank) == (1, (5, 8, 8), 2)
    assert spec.diffusion.p_sc == 0.9


def test_base_file_is_merged_under_the_child(tmp_path):
    write(
        tmp_path,
        "base.yaml",
        "model:\n  lora_rank: 4\n  qk_norm: false\n  st_window: full\ndata:\n  num_frames: 9\n",
    )
    child = write(tmp_path, "child.yaml", "base: base.yaml\nmodel:\n  lora_rank: 16\n")
    spec = load_spec(child)
    assert spec.model.lora_rank == 16  # child wins
    assert spec.model.qk_norm is False  # sibling key kept from base
    assert spec.data.num_frames == 9


def test_base_chains_and_cycles(tmp_path):
    write(tmp_path, "a.yaml", "base: b.yaml\n")
    write(tmp_path, "b.yaml", "base: a.yaml\n")
    (problem,) = problems_of(tmp_path / "a.yaml")
    assert "cycle" in problem


def test_overrides_parse_yaml_values():
    spec = load_spec(None, ["model.lora_rank=16", "model.st_window=[5,4,4]", "tokenizer.checkpoint=null"])
    assert spec.model.lora_rank == 16
    assert spec.model.st_window == (5, 4, 4)
    assert spec.tokenizer.checkpoint is None
    assert load_spec(None, ["model.st_window=full"]).model.st_window == "full"


def test_hash_is_canonical_and_ignores_what_cannot_change_results(tmp_path):
    a = write(tmp_path, "a.yaml", "model:\n  lora_rank: 4\n  qk_norm: true\n")
    b = write(tmp_path, "b.yaml", "model:\n  qk_norm: true\n  lora_rank: 4\n")
    assert load_spec(a).hash == load_spec(b).hash
    assert load_spec(a, ["tracking.experiment=other"]).hash == load_spec(a).hash
    assert load_spec(a, ["train.log_every=7", "data.num_workers=0"]).hash == load_spec(a).hash
    assert load_spec(a, ["description=another note"]).hash == load_spec(a).hash
    assert load_spec(a, ["model.lora_rank=8"]).hash != load_spec(a).hash
    assert len(load_spec(a).hash) == 12


def test_all_problems_are_listed_at_once(tmp_path):
    path = write(
        tmp_path, "bad.yaml", "data:\n  bogus: 1\nmodel:\n  st_window: [5, 3, 8]\ndiffusion:\n  p_sc: 1.5\n"
    )
    problems = problems_of(path, ["model.lora_rank=abc"])
    text = "\n".join(problems)
    assert "data.bogus: unknown field; allowed here:" in text and "num_frames" in text
    assert "model.lora_rank: got 'abc'" in text
    assert "diffusion.p_sc: got 1.5" in text and "less than or equal to 1" in text


def test_window_must_tile_the_latent_grid():
    (problem,) = problems_of(None, ["model.st_window=[5,3,8]"])
    assert problem.startswith("model.st_window: got [5, 3, 8] - must tile the patch grid 5x16x16")


def test_window_is_checked_after_patchify():
    # p=2 turns the 16x16 latent frame into 8x8 patch tokens: a 5x3x3 window no longer tiles it,
    # while a window larger than the grid covers the whole axis.
    (problem,) = problems_of(None, ["model.patch_size=2", "model.st_window=[5,3,3]"])
    assert "patch grid 5x8x8" in problem
    assert load_spec(None, ["model.patch_size=4"]).model.patch_size == 4


def test_latent_grid_follows_frames_and_tokenizer():
    spec = load_spec(None, ["data.num_frames=1", "data.height=256", "data.width=256"])
    assert spec.latent_shape == (1, 32, 32)
    (problem,) = problems_of(None, ["data.num_frames=16"])
    assert "data.num_frames: got 16" in problem and "f_t=4" in problem and "e.g. 17" in problem
    (problem,) = problems_of(None, ["data.height=100"])
    assert "data.height: got 100 - must be divisible by tokenizer.f_s=8" in problem


def test_cross_section_checks_still_run_next_to_an_unknown_field():
    problems = problems_of(None, ["data.bogus=1", "model.st_window=[5,3,8]"])
    assert any(p.startswith("data.bogus") for p in problems)
    assert any(p.startswith("model.st_window") for p in problems)


def test_malformed_override_and_missing_file(tmp_path):
    (problem,) = problems_of(None, ["lora_rank"])
    assert "expected key=value" in problem
    (problem,) = problems_of(tmp_path / "missing.yaml")
    assert "does not exist" in problem


def test_every_field_is_documented():
    undocumented = [path for path, description, _ in spec_fields() if not description]
    section_level = {name for name in ExperimentSpec.model_fields}
    assert [p for p in undocumented if p not in section_level] == []


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_spec_validates(path, capsys):
    assert main(["spec", "validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ok ")


def test_cli_validate_exit_codes(tmp_path, capsys):
    assert main(["spec", "validate", str(REPO / "experiments/base/default.yaml")]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "ok" and len(out[1]) == 12
    assert main(["spec", "validate", str(REPO / "experiments/base/default.yaml"), "diffusion.p_fp=2"]) == 2
    assert "diffusion.p_fp: got 2" in capsys.readouterr().err


def test_cli_show_prints_resolved_yaml(capsys):
    assert main(["spec", "show", str(REPO / "experiments/base/default.yaml"), "model.lora_rank=64"]) == 0
    out = capsys.readouterr().out
    assert "lora_rank: 64" in out and out.startswith("# spec hash: ")


def test_joint_training_rejects_spatiotemporal_cross_attention():
    overrides = [
        "data.image_root=/imgs",
        "data.image_ratio=0.5",
        "diffusion.latent_source=encode",
        "model.text_dim=16",
        "model.cross_attention=all",
    ]
    (problem,) = problems_of(None, overrides)
    assert problem.startswith("model.cross_attention: got 'all'")
    assert (
        load_spec(None, [*overrides[:4], "model.cross_attention=spatial"]).model.cross_attention == "spatial"
    )


def test_with_overrides_revalidates_a_loaded_spec():
    # A sweep trial is a set of overrides on a loaded spec.
    spec = load_spec(None)
    assert spec.with_overrides(["model.lora_rank=64"]).model.lora_rank == 64
    assert spec.model.lora_rank == 2  # the original is unchanged
    with pytest.raises(SpecError, match="model.st_window"):
        spec.with_overrides(["model.st_window=[5,3,3]"])


def test_overrides_may_follow_options(capsys):
    path = str(REPO / "experiments/base/default.yaml")
    assert (
        main(["model", "info", "--spec", path, "model.size=tiny", "--text-len", "0", "model.lora_rank=4"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["overrides"] == ["model.size=tiny", "model.lora_rank=4"]
    with pytest.raises(SystemExit) as info:
        main(["model", "info", "--spec", path, "--bogus-flag"])
    assert info.value.code == 2
