"""`walt-bench report` end to end from fixture result files (tmp_path): tables, plots, index, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from walt_bench.cli import main
from walt_bench.report.results import metric_record, result_path, write_result


def _fixture(root, with_artifacts=False):
    """Table 3c at smoke scale with p_sc=0.6 missing; Table 3d with one failed row; a malformed file."""
    for i, (variant, fvd) in enumerate([("p_sc=0.0", 30.0), ("p_sc=0.3", 20.0), ("p_sc=0.9", 18.0)]):
        artifacts = {}
        if with_artifacts and i < 2:
            run = root / f"run{i}"
            run.mkdir(parents=True)
            lines = [json.dumps({"step": s, "loss": 1.0 / (s + 1)}) for s in range(0, 50, 10)]
            (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
            videos = np.random.default_rng(i).integers(0, 255, (3, 5, 8, 8, 3), dtype=np.uint8)
            artifacts = {"metrics_jsonl": f"../run{i}/metrics.jsonl"}
            if i == 0:  # samples.npz (videos uint8 (N, T, H, W, 3))
                np.savez(run / "samples.npz", videos=videos, labels=np.zeros(3, dtype=np.int64))
                artifacts["samples_npz"] = f"../run{i}/samples.npz"
            else:  # the sampler's grid.gif
                frames = [Image.fromarray(f) for f in videos[0]]
                frames[0].save(run / "grid.gif", save_all=True, append_images=frames[1:])
                artifacts["samples_grid"] = f"../run{i}/grid.gif"
        write_result(
            result_path(root, "3c", variant, "smoke"),
            table="3c",
            variant=variant,
            scale="smoke",
            metrics={
                "fvd": metric_record("FVD-synthetic", fvd, 64, "synthetic_fvd"),
                "is": metric_record("IS-synthetic", 2.0, 64, "synthetic_fvd"),
            },
            artifacts=artifacts,
            git_commit="",
        )
    write_result(
        root / "failed.json",
        table="3d",
        variant="r=2",
        scale="smoke",
        status="failed",
        error="OOM",
        git_commit="",
    )
    (root / "broken.json").write_text('{"format": "walt_bench.result/1", "table": ')


def test_report_renders_markdown_csv_latex_and_index_from_fixtures(tmp_path, capsys):
    _fixture(tmp_path / "results")
    out = tmp_path / "reports"
    rc = main(["report", "--results", str(tmp_path / "results"), "--out", str(out), "--no-plots"])
    assert rc == 0
    md = (out / "table3c.md").read_text()
    assert "| p_sc=0.6 | — | 60.0 | — | 86.8 | — | — | — |" in md  # missing row: paper only, never 0
    assert "| p_sc=0.0 | 30 | 109.9 | 2 | 82.6 | 64 | smoke | — |" in md
    assert "Kendall τ = +1.00" in md
    csv = (out / "table3c.csv").read_text().splitlines()
    assert csv[0].startswith("variant,status,scale,fvd_ours,")
    assert any(line.startswith("p_sc=0.6,missing,,,") for line in csv)
    tex = (out / "table3c.tex").read_text()
    assert r"\begin{tabular}" in tex and r"p\_sc=0.6 & -- & 60.0 &" in tex
    index = (out / "README.md").read_text()
    assert "smoke-scale numbers are not comparable with the paper in absolute terms" in index
    assert "broken.json" in index  # the skipped file is named
    assert all(
        (out / f"table{t}.{ext}").is_file()
        for t in ("1", "2", "3f", "4", "5")
        for ext in ("md", "csv", "tex")
    )
    assert (out / "orderings.csv").is_file()
    printed = capsys.readouterr()
    assert "broken.json" in printed.err and str(out) in printed.out


def test_table5_says_text_to_video_not_run(tmp_path):
    _fixture(tmp_path / "results")
    main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "r"), "--no-plots"])
    assert "text-to-video not run" in (tmp_path / "r" / "table5.md").read_text()
    assert "text-to-video not run" in (tmp_path / "r" / "README.md").read_text()


def test_tables_option_limits_the_report(tmp_path):
    _fixture(tmp_path / "results")
    out = tmp_path / "r"
    main(
        [
            "report",
            "--results",
            str(tmp_path / "results"),
            "--out",
            str(out),
            "--tables",
            "3c,3d",
            "--no-plots",
        ]
    )
    assert sorted(p.name for p in out.glob("table*.md")) == ["table3c.md", "table3d.md"]


def test_plots_are_written_and_missing_artifacts_are_listed_as_skipped(tmp_path):
    _fixture(tmp_path / "results", with_artifacts=True)
    out = tmp_path / "r"
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(out), "--tables", "3c"]) == 0
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == [
        "table3c-loss.png",
        "table3c-ours-vs-paper.png",
        "table3c-samples-p_sc=0.0.png",
        "table3c-samples-p_sc=0.3.png",
    ]
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    index = (out / "README.md").read_text()
    assert all(f"(plots/{p})" in index for p in pngs)  # the index links every plot
    assert "Table 3c p_sc=0.9 samples: no samples_npz or samples_grid artifact found" in index


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--results", "{tmp}/nope"], "does not exist"),
        (["--results", "{tmp}", "--tables", "3g"], "unknown table"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, argv, message):
    assert main(["report", *(a.format(tmp=tmp_path) for a in argv), "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_the_report_package_never_imports_torch():
    code = (
        "import sys; import walt_bench.report.build, walt_bench.report.plots, walt_bench.report.commands; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
