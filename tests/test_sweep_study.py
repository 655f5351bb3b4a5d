"""`walt-bench sweep`: study files, exactly-once claims, a 4-point study on 2 workers logged to a real MLflow
server, a worker killed mid-trial, resuming, and the PostgreSQL storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from services import MlflowServer, PostgresServer, tags
from tiny_spec import TINY

from walt_bench.sweeps.config import SweepConfig
from walt_bench.sweeps.study import claim, load_study, open_storage, variant_spec

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "experiments" / "studies"
REPORT_KEYS = {
    "3a": {"patch=1", "patch=2", "patch=4"},
    "3b": {"st_window=5x4x4", "st_window=5x8x8", "st_window=5x16x16", "st_window=full"},
    "3c": {"p_sc=0.0", "p_sc=0.3", "p_sc=0.6", "p_sc=0.9"},
    "3d": {"r=2", "r=4", "r=16", "r=64", "r=256"},
    "3e": {"full", "no_qk_norm", "no_latent_norm", "no_zero_snr"},
    "3f": {"c=4", "c=8", "c=16", "c=32"},
    "4": {"L/separate", "XL/lora-r2"},
}


def test_every_shipped_study_resolves_with_the_report_variant_keys():
    from walt_bench.report.paper import TABLES

    for path in sorted(STUDIES.glob("*.yaml")):
        study = load_study(path)
        assert set(study.variants) == REPORT_KEYS[study.table] == set(TABLES[study.table].variant_keys), path
        for variant in study.variants:
            for scale in ("smoke", "paper"):
                spec, _ = variant_spec(study, variant, scale)
                assert spec.run.scale == scale
    c16 = variant_spec(load_study(STUDIES / "table3f.yaml"), "c=16", "smoke")[0]
    assert c16.tokenizer.latent_channels == 16  # the variant's knob survives the scale overlay
    table4 = load_study(STUDIES / "table4.yaml")
    assert variant_spec(table4, "XL/lora-r2", "paper")[0].model.size == "XL"
    smoke = variant_spec(table4, "L/separate", "smoke")[0]
    assert (
        smoke.model.size == "tiny" and smoke.model.adaln == "separate"
    )  # the overlay applies after the spec


def _claim_script(url: str, name: str, out: Path) -> list[str]:
    code = f"""
import json, optuna
from walt_bench.sweeps.config import SweepConfig
from walt_bench.sweeps.study import claim, open_storage
storage = open_storage({url!r}, SweepConfig(heartbeat_s=60))
study = optuna.load_study(study_name={name!r}, storage=storage)
got = []
while True:
    trial, _ = claim(study, storage)
    if trial is None:
        break
    got.append(trial.number)
    study.tell(trial, 0.0)
open({str(out)!r}, "w").write(json.dumps(got))
"""
    return [sys.executable, "-c", code]


def _claims_are_exclusive(url: str, tmp_path: Path, n: int = 12) -> None:
    import optuna

    storage = open_storage(url, SweepConfig(heartbeat_s=60))
    study = optuna.create_study(study_name="claims", storage=storage)
    for i in range(n):
        study.enqueue_trial({"variant": str(i)})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(_claim_script(url, "claims", tmp_path / f"w{i}.json"), env=env) for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = (json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2))
    assert sorted(a + b) == list(range(n))  # every trial claimed, none twice
    assert len(study.get_trials()) == n  # and no worker asked the sampler for a new one


def test_two_workers_claim_each_enqueued_trial_once_sqlite(tmp_path):
    _claims_are_exclusive(f"sqlite:///{tmp_path}/optuna.db", tmp_path)


@pytest.mark.slow
def test_two_workers_claim_each_enqueued_trial_once_postgresql(tmp_path):
    why = PostgresServer.available()
    if why:
        pytest.skip(why)
    pg = PostgresServer().start()
    try:
        _claims_are_exclusive(pg.url, tmp_path)
    finally:
        pg.stop()


def test_a_claim_finds_nothing_when_nothing_is_enqueued(tmp_path):
    import optuna

    storage = open_storage(f"sqlite:///{tmp_path}/o.db", SweepConfig())
    study = optuna.create_study(study_name="empty", storage=storage)
    assert claim(study, storage) == (None, None)
    assert study.get_trials() == []


def _tiny_study(tmp_path: Path, variants: dict[str, list[str]], extra: list[str] = ()) -> Path:
    study = {
        "name": "tiny",
        "table": "3c",
        "spec": str(ROOT / "experiments" / "ablations" / "table3e-full.yaml"),
        "scale": "smoke",
        "overrides": [
            *TINY,
            f"data.root={tmp_path / 'syn'}",
            f"run.out_dir={tmp_path / 'runs'}",
            f"tracking.buffer_dir={tmp_path / 'buf'}",
            "tracking.system_metrics_s=2",
            *extra,
        ],
        "variants": variants,
        "record": ["params_m"],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _cli(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "walt_bench", *args], cwd=cwd, env=env, **kw)


P_SC = {f"p_sc={p}": [f"diffusion.p_sc={p}"] for p in ("0.0", "0.3", "0.6", "0.9")}


@pytest.mark.slow
def test_four_points_on_two_workers_run_once_each_and_show_in_mlflow(tmp_path):
    import optuna

    server = MlflowServer(tmp_path / "mlflow").start()
    try:
        study = _tiny_study(tmp_path, P_SC)
        storage = f"sqlite:///{tmp_path}/optuna.db"
        args = ["sweep", "--study", str(study), "--workers", "2", "--storage", storage]
        args += ["--results", str(tmp_path / "results"), "--mlflow-uri", server.uri]
        assert _cli(args, tmp_path).wait(timeout=900) == 0

        trials = optuna.load_study(study_name="tiny-smoke", storage=storage).get_trials()
        assert sorted(t.params["variant"] for t in trials) == sorted(P_SC)  # each point exactly once
        assert all(t.state.name == "COMPLETE" for t in trials)
        from walt_bench.report.results import load_results

        loaded = load_results(tmp_path / "results")  # what `walt-bench report` reads
        assert not loaded.problems
        cells = {r.result.variant: r.result for r in loaded.results}
        assert set(cells) == set(P_SC)
        for result in cells.values():
            assert result.status == "complete" and result.metrics["fvd"].label == "FVD-synthetic"
            assert {"tokenizer", "diffusion", "samples", "metrics"} <= set(result.identities)
        # one tokenizer for all four trials (shared identity, trained once under its lock)
        assert len(list((tmp_path / "runs").glob("tokenizer-*"))) == 1

        runs = server.runs("tiny-smoke")
        by_stage: dict[str, list[dict]] = {}
        for run in runs:
            by_stage.setdefault(tags(run).get("stage"), []).append(run)
        (parent,) = by_stage["study"]
        children = by_stage["trial"]
        assert sorted(tags(r)["variant"] for r in children) == sorted(P_SC)
        parent_id = parent["info"]["run_id"]
        assert all(tags(r)["mlflow.parentRunId"] == parent_id for r in children)
        trial_ids = {r["info"]["run_id"] for r in children}
        for stage in ("diffusion", "samples", "eval"):
            assert len(by_stage[stage]) == 4 and all(
                tags(r)["mlflow.parentRunId"] in trial_ids for r in by_stage[stage]
            )
        for run in runs:
            t = tags(run)
            assert t["git_commit"] and t["scale"] == "smoke" and t["table"] == "3c", t
        child = children[0]
        assert {t["key"] for t in child["data"]["tags"]} >= {"variant", "identity", "identity.tokenizer"}
        assert {p["key"] for p in child["data"]["params"]} >= {"diffusion.p_sc", "model.size"}
        assert {m["key"] for m in child["data"]["metrics"]} >= {"fvd", "is", "params_m"}
        files = set(server.artifacts(child["info"]["run_id"]))
        assert {"grid.gif", "reconstructions.png", "loss_curves.png", "spec.yaml"} <= files
        sample_run = by_stage["samples"][0]["info"]["run_id"]
        assert "grid.gif" in server.artifacts(sample_run) and server.artifacts(sample_run, "videos")
        assert any(m["key"].startswith("system/") for m in by_stage["diffusion"][0]["data"]["metrics"])
    finally:
        server.kill()


def _trial_states(storage: str) -> list[tuple[str, str]]:
    import optuna

    trials = optuna.load_study(study_name="tiny-smoke", storage=storage).get_trials()
    return [
        (t.params.get("variant") or t.system_attrs["fixed_params"]["variant"], t.state.name) for t in trials
    ]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_a_resumed_study_runs_only_the_rest(tmp_path):
    """Worker 1 of a 2-point study finishes point A, is SIGKILLed in point B; a new `walt-bench sweep` finds B's
    trial silent (heartbeat), fails it, retries it, and leaves A alone: each point completes exactly once."""
    variants = {"p_sc=0.0": ["diffusion.p_sc=0.0"], "p_sc=0.9": ["diffusion.p_sc=0.9"]}
    # slow the trainer down just enough to be killed inside it; heartbeats every second
    extra = ["tracking.enabled=false", "sweep.heartbeat_s=1", "sweep.grace_s=3", "train.steps=400"]
    study = _tiny_study(tmp_path, variants, extra)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    common = ["--study", str(study), "--storage", storage, "--results", str(tmp_path / "results")]

    first = _cli(["sweep", *common, "--workers", "1"], tmp_path, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        # read the storage only once a worker runs stages (the launcher has created its tables by then)
        states = _trial_states(storage) if (tmp_path / "runs").is_dir() else []
        if ("p_sc=0.0", "COMPLETE") in states and ("p_sc=0.9", "RUNNING") in states:
            break
        assert first.poll() is None, "the study ended before the worker could be killed"
        time.sleep(0.5)
    time.sleep(0.5)  # inside the second trial's stages (400 steps: long enough on an idle machine)
    os.killpg(first.pid, signal.SIGKILL)  # the launcher and its worker, as a lost machine would
    first.wait()
    assert ("p_sc=0.9", "RUNNING") in _trial_states(storage)

    assert _cli(["sweep", *common, "--workers", "2"], tmp_path).wait(timeout=900) == 0
    states = _trial_states(storage)
    assert states.count(("p_sc=0.0", "COMPLETE")) == 1 and len([s for s in states if s[0] == "p_sc=0.0"]) == 1
    assert sorted(s for v, s in states if v == "p_sc=0.9") == ["COMPLETE", "FAIL"]
    import optuna

    retry = [
        t for t in optuna.load_study(study_name="tiny-smoke", storage=storage).get_trials() if t.number == 2
    ]
    assert retry[0].user_attrs["previous_error"].startswith("worker lost")
    assert (
        json.loads((tmp_path / "results" / "table3c" / "p_sc=0.9-smoke.json").read_text())["status"]
        == "complete"
    )

    # resuming a finished study runs nothing
    before = len(states)
    assert _cli(["sweep", *common, "--workers", "2"], tmp_path).wait(timeout=300) == 0
    assert len(_trial_states(storage)) == before
