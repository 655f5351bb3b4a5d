"""walt-bench bench: one command writes the JSON record (device, commit, command) and the Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from walt_bench import cli

SMOKE = str(Path(__file__).resolve().parents[1] / "experiments/smoke/default.yaml")
TINY = ["--repeats", "1", "--warmup", "1", "--batch", "1", "--tokenizer-batch", "1", "--matmul-n", "64"]


def test_bench_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "cpu-test.json"
    rc = cli.main(
        [
            "bench",
            "--device",
            "cpu",
            "--spec",
            SMOKE,
            "--only",
            "denoiser,tokenizer",
            *TINY,
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result["sections"]) == {"peak", "denoiser", "tokenizer"}  # MFU needs the peak: it runs too
    assert result["device"]["type"] == "cpu" and result["git"]["commit"]
    assert result["command"].startswith("walt-bench bench")
    assert result["settings"]["repeats"] == 1
    den, peak = result["sections"]["denoiser"], result["sections"]["peak"]["peak_flops_per_s"]
    assert den["mfu"] == pytest.approx(den["train_flops_per_sample"] * den["samples_per_s"]["median"] / peak)
    md = out.with_suffix(".md").read_text()
    assert "## Training step" in md and "| denoiser |" in md and "| tokenizer |" in md
    assert md == capsys.readouterr().out


def test_bench_markdown_reports_the_attention_ratios():
    from walt_bench.bench.report import to_markdown

    def case(win, seconds, mib):
        return {
            "spatial_window": [1, 16, 16],
            "st_window": win,
            "timing": {"median_s": seconds},
            "memory": {"step_bytes": mib * 2**20},
        }

    result = {
        "command": "walt-bench bench",
        "date": "d",
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "device": {
            "type": "cpu",
            "name": "x",
            "torch": "t",
            "torch_threads": 2,
            "usable_cpus": 2,
            "OMP_NUM_THREADS": None,
        },
        "settings": {"warmup": 1, "repeats": 3},
        "sections": {
            "attention": {
                "depth": 2,
                "hidden_size": 128,
                "num_heads": 4,
                "batch": 1,
                "grids": [
                    {
                        "latent": [5, 32, 32],
                        "windowed": case([5, 8, 8], 1.0, 100),
                        "full": case([5, 32, 32], 3.0, 400),
                        "speedup": 3.0,
                        "memory_ratio": 4.0,
                    }
                ],
            }
        },
    }
    md = to_markdown(result)
    assert (
        "| 5x32x32 | 1x16x16 / 5x8x8 | 1.000 s | 3.000 s | **3.00x** | 100.0 MiB | 400.0 MiB | **4.00x** |"
        in md
    )


def test_bench_rejects_unknown_sections(capsys):
    assert cli.main(["bench", "--device", "cpu", "--only", "speed"]) == 2
    assert "unknown" in capsys.readouterr().err


@pytest.mark.gpu
def test_bench_on_cuda_reports_bf16_mfu_memory_and_the_sdpa_backend(tmp_path):
    from walt_bench.bench.sections import KERNELS

    out = tmp_path / "cuda-test.json"
    args = ["bench", "--device", "cuda", "--spec", SMOKE, "--only", "denoiser,attention", "--repeats", "2"]
    args += ["--attn-grids", "5x16x16", "--attn-width", "128", "--attn-depth", "2", "--attn-heads", "2"]
    assert cli.main([*args, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    den = result["sections"]["denoiser"]
    assert result["settings"]["precision"] == "bfloat16"
    assert den["memory"]["step_bytes"] > 0 and den["mfu"] > 0
    assert den["attention_kernels"] and set(den["attention_kernels"]) <= set(KERNELS.values())
    assert result["sections"]["attention"]["grids"][0]["speedup"] > 0


def test_bench_takes_a_scale_overlay(tmp_path):
    from walt_bench.spec import load_spec

    spec = str(Path(__file__).resolve().parents[1] / "experiments/ablations/table3d-r2.yaml")
    out = tmp_path / "cpu-scale.json"
    args = [
        "bench",
        "--device",
        "cpu",
        "--spec",
        spec,
        "--scale",
        "smoke",
        "--only",
        "peak",
        "--matmul-n",
        "32",
    ]
    assert cli.main([*args, "--repeats", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["spec_hash"] == load_spec(spec, scale="smoke").hash
