"""Reliability, items 9 and 10: bad specs and command-line input exit 2 naming the field, file or argument, never
with a traceback; specs never execute code; run names cannot steer outputs out of the output directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from walt_bench.cli import main
from walt_bench.identity import STAGES, stage_dir
from walt_bench.spec import load_spec

SMOKE = str(Path(__file__).resolve().parents[1] / "experiments" / "smoke" / "default.yaml")


def _validate(path, capsys, *overrides, names=None) -> str:
    assert main(["spec", "validate", str(path), *overrides]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(names or path) in err
    return err


def test_non_utf8_spec_names_the_file_and_the_byte(tmp_path, capsys):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("description: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8 text: byte 0xe9 at offset 16 (line 1)" in _validate(spec, capsys)


def test_empty_spec_file_is_refused_not_the_paper_defaults(tmp_path, capsys):
    spec = tmp_path / "empty.yaml"
    spec.write_text("# nothing yet\n")
    assert "the file is empty (or only comments)" in _validate(spec, capsys)
    spec.write_text("{}\n")  # the defaults, on purpose
    assert main(["spec", "validate", str(spec)]) == 0


def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path, capsys):
    spec = tmp_path / "dup.yaml"
    spec.write_text("train:\n  lr: 1.0e-4\n  steps: 10\n  lr: 2.0e-4\n")
    assert "duplicate key 'lr' (line 2 and line 4)" in _validate(spec, capsys)


def test_duplicate_keys_in_a_base_file_are_refused_too(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("model: {}\nmodel: {}\n")
    spec = tmp_path / "child.yaml"
    spec.write_text("base: base.yaml\n")
    err = _validate(spec, capsys, names=tmp_path / "base.yaml")
    assert (
        "duplicate key 'model' (line 1 and line 2)" in err and f'in "{tmp_path / "base.yaml"}", line 2' in err
    )


def test_a_python_tag_in_a_spec_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.yaml"
    spec.write_text(f"description: !!python/object/apply:os.system ['touch {marker}']\n")
    err = _validate(spec, capsys)
    assert "python/object/apply:os.system' is not allowed: a spec holds plain data" in err
    assert not marker.exists()


def test_a_python_tag_in_an_override_is_a_plain_string(tmp_path, capsys):
    marker = tmp_path / "pwned"
    spec = tmp_path / "ok.yaml"
    spec.write_text("{}\n")
    err = _validate(spec, capsys, f"train.lr=!!python/object/apply:os.system ['touch {marker}']")
    assert 'train.lr: got "!!python/object/apply:os.system' in err and not marker.exists()


@pytest.mark.parametrize("value", ["-5", "0", "ten"])
def test_bad_stop_at_step_names_the_argument(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--spec", SMOKE, "--stop-at-step", value])
    assert info.value.code == 2
    assert "argument --stop-at-step" in capsys.readouterr().err


def test_a_folder_or_a_yaml_file_given_as_ckpt_is_named(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text("train: {lr: 1}\n")
    common = ["sample", "--spec", SMOKE, "--scale", "smoke", "--num", "1", "--out", str(tmp_path / "o")]
    assert main([*common, "--ckpt", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {folder} is a directory" in err and "step_*.pt" in err and "Traceback" not in err
    assert main([*common, "--ckpt", str(yaml_file)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {yaml_file} is a text file" in err and "Traceback" not in err


def test_a_folder_given_as_resume_path_is_named(tmp_path):
    from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

    from walt_bench.engine.loop import Part
    from walt_bench.errors import CheckpointError

    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=2)
    with pytest.raises(CheckpointError, match=r"is a directory"):
        tiny_train(
            [Part("net", TinyNet(), regression_loss)],
            make_loader(),
            train_cfg=train_cfg,
            run_cfg=run_cfg,
            tracking_cfg=tracking_cfg,
            spec_dict=spec_dict,
            spec_hash="a" * 12,
            resume=str(tmp_path),
            progress=False,
        )


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "..", "a/../../b"])
def test_run_names_never_reach_a_path(tmp_path, name):
    spec = load_spec(SMOKE, [f"run.name={name}", f"run.out_dir={tmp_path / 'runs'}"], scale="smoke")
    out = (tmp_path / "runs").resolve()
    for stage in STAGES:
        if stage in ("samples", "metrics"):
            continue  # named by the samples identity below the diffusion run's out_dir (identity.samples_dir)
        path = stage_dir(spec, stage).resolve()
        assert path.parent == out and path.name.startswith(f"{stage}-")
        assert name.strip("/.") not in path.name or name.strip("/.") == ""
