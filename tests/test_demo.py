"""`walt-bench demo`: the stage list of the embedded default and how a failing stage stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from walt_bench import demo
from walt_bench.errors import UserError
from walt_bench.spec import load_spec

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke" / "default.yaml"


def test_stages_run_the_pipeline_in_order_with_the_overrides(tmp_path):
    spec = load_spec(SMOKE, [f"data.root={tmp_path}/synthetic"])
    stages = demo.demo_stages(str(SMOKE), ["train.steps=3"], spec, tmp_path / "run")
    names = [name for name, _ in stages]
    assert names == [
        "synthesize data",
        "check data",
        "train tokenizer",
        "train synthetic classifier",
        "evaluate tokenizer",
        "encode latent cache",
        "train W.A.L.T",
        "sample",
        "evaluate samples",
    ]
    assert stages[0][1] == ["data", "synth", "--out", f"{tmp_path}/synthetic"]
    assert all(argv[-1] == "train.steps=3" for _, argv in stages[1:])
    sample_argv = dict(stages)["sample"]
    assert sample_argv[sample_argv.index("--out") + 1] == str(tmp_path / "run" / "samples")


def test_existing_data_is_not_synthesized_again(tmp_path):
    (tmp_path / "ucfTrainTestlist").mkdir()
    spec = load_spec(SMOKE, [f"data.root={tmp_path}"])
    assert "synthesize data" not in [name for name, _ in demo.demo_stages(str(SMOKE), [], spec, tmp_path)]


def test_a_failing_stage_stops_the_demo_with_its_name(tmp_path, monkeypatch):
    (tmp_path / "ucfTrainTestlist").mkdir()
    calls = []

    def fake_main(argv):
        calls.append(argv[:2])
        return 2 if argv[:2] == ["tokenizer", "train"] else 0

    monkeypatch.setattr("walt_bench.cli.main", fake_main)
    overrides = [f"data.root={tmp_path}", f"run.out_dir={tmp_path}/runs"]
    with pytest.raises(UserError, match=r"stage 2 \(train tokenizer\) with exit status 2"):
        demo.run_demo(str(SMOKE), overrides)
    assert calls == [["data", "check"], ["tokenizer", "train"]]  # nothing ran after the failure
