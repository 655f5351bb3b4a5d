"""The result-file contract: write_result / load_results."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from walt_bench.report.results import (
    FORMAT,
    ResultFileWarning,
    load_results,
    metric_record,
    result_path,
    write_result,
)


def _write(root, table="3c", variant="p_sc=0.3", **kw):
    kw.setdefault("metrics", {"fvd": metric_record("FVD-synthetic", [13.0, 14.0], 64, "synthetic_fvd")})
    return write_result(
        result_path(root, table, variant, "smoke"),
        table=table,
        variant=variant,
        scale="smoke",
        git_commit="abc",
        **kw,
    )


def test_written_result_loads_back_with_every_field(tmp_path):
    path = _write(
        tmp_path,
        spec="experiments/ablations/table3c-psc0.3.yaml",
        overrides=["diffusion.p_sc=0.3"],
        identities={"diffusion": "d1"},
        extra={"params_m": 313.2, "train_steps": 1500},
        artifacts={"metrics_jsonl": "runs/x/metrics.jsonl"},
    )
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["created"].endswith("Z")
    [loaded] = load_results(tmp_path).results
    r = loaded.result
    assert (r.table, r.variant, r.scale, r.status) == ("3c", "p_sc=0.3", "smoke", "complete")
    assert r.metrics["fvd"].mean == pytest.approx(13.5)
    assert r.metrics["fvd"].std == pytest.approx(0.7071, abs=1e-4)
    assert (r.metrics["fvd"].num_samples, r.metrics["fvd"].repeats) == (64, 2)
    assert r.value("params_m") == pytest.approx(313.2)
    assert r.overrides == ["diffusion.p_sc=0.3"] and r.identities == {"diffusion": "d1"}
    assert loaded.path == path


def test_malformed_files_are_skipped_with_a_warning_naming_them(tmp_path):
    _write(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "badtable.json").write_text(json.dumps({"format": FORMAT, "table": "9", "variant": "x"}))
    with pytest.warns(ResultFileWarning) as caught:
        loaded = load_results(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.json" in messages and "badtable.json" in messages
    assert len(loaded.results) == 1 and len(loaded.problems) == 2


def test_json_files_of_other_tools_are_ignored_silently(tmp_path, recwarn):
    (tmp_path / "metrics.json").write_text(json.dumps({"fvd": {"mean": 1.0}}))
    (tmp_path / "list.json").write_text("[1, 2]")
    loaded = load_results(tmp_path)
    assert loaded.results == [] and loaded.problems == [] and len(recwarn) == 0


def test_a_newer_format_version_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "v2.json").write_text(json.dumps({"format": "walt_bench.result/2", "table": "3c"}))
    with pytest.warns(ResultFileWarning, match="v2.json"):
        assert load_results(tmp_path).results == []


def test_write_result_rejects_bad_input_before_writing(tmp_path):
    with pytest.raises(ValidationError, match="table"):
        write_result(tmp_path / "r.json", table="3g", variant="x", scale="smoke", git_commit="")
    assert not (tmp_path / "r.json").exists()


def test_a_failed_result_needs_an_error_message(tmp_path):
    with pytest.raises(ValidationError, match="error"):
        _write(tmp_path, status="failed", metrics={})
    path = _write(tmp_path, status="failed", error="out of memory", metrics={})
    assert load_results(tmp_path).results[0].result.error == "out of memory" and path.exists()


def test_nan_metric_is_a_malformed_file(tmp_path):
    path = _write(tmp_path)
    data = json.loads(path.read_text())
    data["metrics"]["fvd"]["mean"] = float("nan")
    path.write_text(json.dumps(data))  # json writes NaN
    with pytest.warns(ResultFileWarning, match="fvd"):
        assert load_results(tmp_path).results == []


def test_artifacts_resolve_relative_to_the_result_file(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "metrics.jsonl").write_text("")
    _write(tmp_path, artifacts={"metrics_jsonl": "../runs/metrics.jsonl", "samples_npz": "../runs/none.npz"})
    [loaded] = load_results(tmp_path).results
    assert loaded.artifact("metrics_jsonl") == tmp_path / "table3c" / ".." / "runs" / "metrics.jsonl"
    assert loaded.artifact("samples_npz") is None and loaded.artifact("samples_grid") is None


def test_writing_a_variant_that_is_not_a_paper_row_warns(tmp_path):
    with pytest.warns(ResultFileWarning, match="p_sc=0.5"):
        path = _write(tmp_path, variant="p_sc=0.5")
    assert path.exists()
