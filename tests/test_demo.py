"""`walt-bench demo`: the stage functions it runs, in order, and how a failing stage stops it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_spec import TINY as TINY_SPEC

from walt_bench import stages
from walt_bench.errors import UserError
from walt_bench.spec import load_spec

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke" / "default.yaml"


def _record_calls(monkeypatch, fail: str | None = None) -> list[str]:
    calls = []

    def fake(name):
        def run(*args, **kwargs):
            calls.append(name)
            if name == fail:
                raise UserError(f"{name} broke")
            return {"path": "samples"} if name == "samples" else {}

        return run

    for name in (
        "ensure_data",
        "tokenizer",
        "classifier",
        "tokenizer_eval",
        "latents",
        "diffusion",
        "samples",
    ):
        monkeypatch.setattr(stages, name, fake(name))
    monkeypatch.setattr(stages, "metrics", fake("metrics"))
    return calls


def test_stages_run_the_pipeline_in_order(monkeypatch, tmp_path):
    calls = _record_calls(monkeypatch)
    record = stages.run_stages(load_spec(SMOKE, [f"run.out_dir={tmp_path}"]))
    expected = ["ensure_data", "tokenizer", "classifier", "tokenizer_eval", "latents", "diffusion", "samples"]
    assert calls == [*expected, "metrics"]
    assert list(record["stages"]) == list(stages.STAGES)


def test_a_failing_stage_stops_the_pipeline_with_its_name(monkeypatch, tmp_path):
    calls = _record_calls(monkeypatch, fail="tokenizer")
    with pytest.raises(UserError, match=r"stage 2 \(tokenizer\) stopped: tokenizer broke"):
        stages.run_stages(load_spec(SMOKE, [f"run.out_dir={tmp_path}"]))
    assert calls == ["ensure_data", "tokenizer"]  # nothing ran after the failure


def test_missing_synthetic_data_is_written_only_when_asked(tmp_path):
    spec = load_spec(SMOKE, [f"data.root={tmp_path / 'syn'}"])
    with pytest.raises(UserError):
        stages.ensure_data(spec)
    record = stages.ensure_data(spec, synthesize_missing=True)
    assert record["synthesized"] and (tmp_path / "syn" / "ucfTrainTestlist").is_dir()
    assert not stages.ensure_data(spec, synthesize_missing=True)["synthesized"]  # kept, not rewritten


TINY = [*TINY_SPEC, "tracking.enabled=false"]


@pytest.mark.slow
def test_every_stage_runs_and_status_then_shows_each_done(tmp_path, capsys):
    """The demo's stages end to end on a tiny setting; `walt-bench status` then shows every stage done, and a
    second run reuses everything (the trainers' finished runs, the cache, the samples, the metrics)."""
    from walt_bench.cli import main
    from walt_bench.status import stage_states

    over = [*TINY, f"data.root={tmp_path / 'syn'}", f"run.out_dir={tmp_path / 'runs'}"]
    spec = load_spec(SMOKE, over)
    stages.run_stages(spec, synthesize_missing=True, progress=False)
    states = {s.stage: s.state for s in stage_states(spec)}
    assert states == {s: "done" for s in ("tokenizer", "latents", "diffusion", "samples", "metrics")}
    first = stages.run_stages(spec, progress=False)["stages"]["metrics"]["result"]
    assert 0 <= first["CAS-synthetic"]["mean"] <= 1 and first["CAS-synthetic"]["N"] == 4
    assert first["real"]["split"] == "test" and 0 <= first["real"]["CAS-synthetic"] <= 1
    again = stages.run_stages(spec, progress=False)["stages"]
    assert again["latents"]["reused"] and again["samples"]["reused"] and again["metrics"]["reused"]
    capsys.readouterr()
    assert main(["status", "--spec", str(SMOKE), *over]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[:3][2] for line in table[1:]] == ["done"] * 5


@pytest.mark.slow
def test_demo_ends_with_the_report_of_its_table(tmp_path, monkeypatch, capsys):
    from walt_bench import demo

    monkeypatch.chdir(tmp_path)
    spec = load_spec(SMOKE, [*TINY, f"data.root={tmp_path / 'syn'}", f"run.out_dir={tmp_path / 'runs'}"])
    summary = demo.run_demo(spec)
    report = Path(summary["look_at"]["report"])
    table = (report.parent / "table3c.md").read_text()
    assert "p_sc=0.9" in table and "FVD-synthetic" in table and "smoke" in table
    assert "report (Table 3c" in capsys.readouterr().out
