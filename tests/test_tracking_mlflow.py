"""MLflow tracking: flattened spec params, step metrics and artifacts of a run in a temporary SQLite store."""

from __future__ import annotations

import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine.loop import Part
from walt_bench.tracking.config import TrackingConfig
from walt_bench.tracking.mlflow import (
    NullTracker,
    artifact_location,
    flatten_params,
    resolve_uri,
    start_tracking,
)


def test_flatten_params_uses_dotted_keys_and_truncates_long_values():
    flat = flatten_params(
        {"train": {"lr": 5e-4, "betas": [0.9, 0.99]}, "run": {"name": "x"}, "note": "y" * 7000}
    )
    assert flat["train.lr"] == "0.0005" and flat["train.betas"] == "[0.9, 0.99]" and flat["run.name"] == "x"
    assert len(flat["note"]) == 6000 and flat["note"].endswith("...")


def test_uri_precedence(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(TrackingConfig()) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_uri(TrackingConfig()) == "sqlite:///env.db"
    assert resolve_uri(TrackingConfig(uri="sqlite:///cfg.db")) == "sqlite:///cfg.db"


def test_disabled_tracking_is_a_null_tracker():
    assert isinstance(start_tracking(TrackingConfig(enabled=False), "r", {"a": 1}), NullTracker)
    assert isinstance(start_tracking(TrackingConfig(), "r", {"a": 1}, enabled=False), NullTracker)


def test_training_run_and_its_resumption_are_logged_to_one_mlflow_run(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    train_cfg, run_cfg, _, spec_dict = configs(tmp_path, steps=4, log_every=2)
    tracking = TrackingConfig(
        enabled=True, uri=uri, experiment="engine-test", buffer_dir=str(tmp_path / "buf")
    )

    def run(stop_at):
        torch.manual_seed(0)
        return tiny_train(
            [Part("net", TinyNet(), regression_loss)],
            make_loader(),
            train_cfg=train_cfg,
            run_cfg=run_cfg,
            tracking_cfg=tracking,
            spec_dict=spec_dict,
            spec_hash="abcdefabcdef",
            progress=False,
            tokens_per_sample=10,
            stop_at_step=stop_at,
        )

    first = run(stop_at=2)
    result = run(stop_at=None)  # resumes from step 2 into the same MLflow run
    assert first.summary["mlflow_run_id"] == result.summary["mlflow_run_id"]
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("engine-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id == result.summary["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.01" and run.data.params["run.seed"] == "7"
    assert run.data.tags["identity"] == "abcdefabcdef"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [2, 4]
    assert history[-1].value == result.summary["final_loss"]
    assert {"lr", "grad_norm", "samples_per_s", "tokens_per_s", "peak_mem_gib"} <= set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"spec.yaml", "summary.json"}


def test_sqlite_store_keeps_artifacts_beside_the_database(tmp_path):
    assert artifact_location(f"sqlite:///{tmp_path}/mlflow.db") == (tmp_path / "mlruns").as_uri()
    assert artifact_location("http://127.0.0.1:5000") is None
