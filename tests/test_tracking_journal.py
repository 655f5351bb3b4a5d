"""The tracking journal on its own (no server): what was not sent stays, what was sent is not sent again, and the
sweep's hooks on trackers (parent run, tags, loss for the pruner)."""

from __future__ import annotations

import os

from walt_bench.tracking.config import TrackingConfig
from walt_bench.tracking.mlflow import PARENT_TAG, Journal, limit_http_retries, make_tracker, run_context


class FlakyClient:
    """Records what it is sent; raises ConnectionError on the calls numbered in ``fail_on``."""

    def __init__(self, fail_on=()):
        self.calls, self.fail_on, self.n = [], set(fail_on), 0

    def _call(self, name, *args):
        self.n += 1
        if self.n in self.fail_on:
            raise ConnectionError("server gone")
        self.calls.append((name, args))

    def log_batch(self, run_id, metrics=(), params=()):
        self._call("log_batch", [(m.key, m.step) for m in metrics])

    def set_tag(self, run_id, k, v):
        self._call("set_tag", k, v)


def test_a_failed_send_keeps_the_rest_and_a_later_send_delivers_it_once(tmp_path):
    journal = Journal(tmp_path, "local-x", "http://nowhere")
    journal.state["run_id"] = "r1"
    journal.append({"op": "metrics", "metrics": [["loss", 1.0, 0, 1]]})
    journal.append({"op": "tags", "tags": {"a": "1"}})
    journal.append({"op": "tags", "tags": {"b": "2"}})
    first = FlakyClient(fail_on={3})
    try:
        journal.send(first, {})
    except ConnectionError:
        pass
    assert [c[0] for c in first.calls] == ["log_batch", "set_tag"]
    assert journal.unsent() == 1
    again = Journal(tmp_path, "local-x")  # another process (mlflow-sync) picks it up from the files
    second = FlakyClient()
    again.send(second, {})
    assert second.calls == [("set_tag", ("b", "2"))] and again.unsent() == 0


def test_runs_opened_in_a_context_nest_under_its_parent_and_carry_its_tags():
    cfg = TrackingConfig(uri="sqlite:///unused.db")
    with run_context(parent_run_id="p123", tags={"table": "3c", "variant": "p_sc=0.3"}):
        tracker = make_tracker(cfg, "x", tags={"stage": "diffusion"})
    assert tracker.tags[PARENT_TAG] == "p123"
    assert tracker.tags["variant"] == "p_sc=0.3" and tracker.tags["stage"] == "diffusion"
    assert tracker.tags["git_commit"]
    assert PARENT_TAG not in make_tracker(cfg, "y").tags  # outside the context: no parent


def test_mlflow_http_retries_are_limited_unless_the_user_set_them(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    limit_http_retries(5)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"


def test_the_pruner_hook_sees_the_diffusion_loss_only():
    from walt_bench.sweeps.trial import _loss_hook
    from walt_bench.tracking import mlflow

    seen = []
    cfg = TrackingConfig(enabled=False)
    with _loss_hook(lambda value, step: seen.append((value, step))):
        diffusion = mlflow.make_tracker(cfg, "d", tags={"stage": "diffusion"})
        tokenizer = mlflow.make_tracker(cfg, "t", tags={"stage": "tokenizer"})
    diffusion.log_metrics({"loss": 0.5, "lr": 1e-3}, 10)
    tokenizer.log_metrics({"loss": 0.7}, 10)
    assert seen == [(0.5, 10)]
