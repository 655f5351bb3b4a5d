"""The DVC pipeline: dvc.yaml is what `walt-bench pipeline dvc-yaml` generates, and a tiny pipeline of it runs end
to end in a fresh git+dvc repository, after which a second `dvc repro` does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_spec import TINY as TINY_SPEC

from walt_bench.pipeline import cells, dvc_yaml

REPO = Path(__file__).resolve().parents[1]
TINY = [*TINY_SPEC, "tracking.enabled=false"]


def test_the_committed_dvc_yaml_is_the_generated_one():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(), (
        "regenerate: walt-bench pipeline dvc-yaml > dvc.yaml"
    )


def test_every_runnable_row_of_the_paper_tables_is_a_cell_and_tokenizers_are_shared():
    found = cells()
    assert len(found) == 30 and {c.table for c in found.values()} == {
        "1",
        "2",
        "3a",
        "3b",
        "3c",
        "3d",
        "3e",
        "3f",
        "4",
    }
    assert {c.tokenizer for c in found.values() if c.table == "3f"} == {
        f"ucf101-c{c}" for c in (4, 8, 16, 32)
    }
    assert {c.tokenizer for c in found.values() if c.table in ("3a", "3b", "3c", "3d", "3e")} == {"ucf101-c8"}
    stages = yaml.safe_load(dvc_yaml())["stages"]
    assert set(stages) == {
        "data",
        "classifier",
        "tokenizer",
        "encode",
        "train",
        "sample",
        "eval",
        "report",
        "index",
    }


def _dvc(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_tiny_pipeline_runs_end_to_end_and_a_second_repro_does_nothing(tmp_path):
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed in this environment")
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "experiments", repo / "experiments")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    (repo / "params.yaml").write_text(yaml.safe_dump({"scale": "smoke", "roots": {}, "overrides": TINY}))
    (repo / "dvc.yaml").write_text(dvc_yaml(["3c-p_sc-0.3"]))
    out = _dvc(repo, "repro")
    for stage in (
        "data",
        "tokenizer@ucf101-c8",
        "encode@ucf101-c8",
        "train@3c-p_sc-0.3",
        "report@3c",
        "index",
    ):
        assert f"Running stage '{stage}'" in out
    report = (repo / "reports" / "3c" / "table3c.md").read_text()
    assert "p_sc=0.3" in report and "FVD-synthetic" in report
    assert "[3c/](3c/README.md)" in (repo / "reports" / "README.md").read_text()
    again = _dvc(repo, "repro")
    assert "Running stage" not in again and "up to date" in again
