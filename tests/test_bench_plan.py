"""walt-bench plan: FLOPs x steps x batch / (peak x MFU) = hours, activation memory, paper tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from walt_bench.bench import plan
from walt_bench.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments/smoke/default.yaml"


def test_gpu_hours_by_hand():
    # 3.6e18 FLOPs at 50 % of 1 PFLOP/s: 3.6e18 / 5e14 = 7,200 s = 2 h
    assert plan.gpu_hours(3.6e18, 1e15, 0.5) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        plan.gpu_hours(1.0, 1e15, 1.5)


def test_denoiser_cost_by_hand():
    c = plan.denoiser_cost(1e12, self_condition=True, batch_size=256, steps=1000)
    assert c == {"flops_per_sample": 4e12, "flops_per_step": 1.024e15, "total_flops": 1.024e18}
    assert plan.denoiser_cost(1e12, self_condition=False, batch_size=1, steps=1)["total_flops"] == 3e12


def _throughput(mfu=0.5, peak=1e15):
    return plan.Throughput(peak, "test peak", mfu, "test mfu")


def test_plan_spec_chains_model_flops_steps_batch_peak_and_mfu():
    from walt_bench.denoiser.info import model_info
    from walt_bench.denoiser.model import build_denoiser

    spec = load_spec(SMOKE)
    p = plan.plan_spec(spec, _throughput(), gpus=2)
    fwd = model_info(build_denoiser(spec, device="meta"))["forward_flops_per_sample"]
    assert p["flops_per_sample"] == pytest.approx(4 * fwd)  # p_sc = 0.9 > 0: + the self-conditioning pass
    assert p["total_flops"] == pytest.approx(4 * fwd * spec.train.batch_size * spec.train.steps)
    assert p["gpu_hours"] == pytest.approx(p["total_flops"] / (1e15 * 0.5) / 3600)
    assert p["wall_clock_hours"] == pytest.approx(p["gpu_hours"] / 2)
    assert p["memory"]["micro_batch_per_gpu"] == spec.train.batch_size // 2
    assert p["memory"]["model_state_bytes"] == p["params"] * (16 + 4)  # AdamW + EMA
    assert p["tokenizer"]["total_flops"] > 0 and p["tokenizer"]["gpu_hours"] > 0


def test_activation_memory_counts_the_attention_probabilities_of_every_window():
    # tiny: 2 layers, 4 heads; grid 5x8x8: spatial layer = 5 windows of 64 tokens, ST layer = 4 windows of 80
    spec = load_spec(SMOKE)
    p = plan.plan_spec(spec, _throughput(), dtype="fp32")
    act = p["memory"]["activation_bytes_per_sample"]
    assert act["attention_probabilities"] == 4 * 4 * (
        5 * 64**2 + 4 * 80**2
    )  # fp32 bytes x heads x windows x n^2
    assert act["math_attention"] - act["fused_attention"] == act["attention_probabilities"]
    bf16 = plan.plan_spec(spec, _throughput(), dtype="bf16")["memory"]["activation_bytes_per_sample"]
    assert bf16["math_attention"] < act["math_attention"]


def test_activation_memory_is_what_autograd_saves_without_the_parameters():
    import torch
    from torch import nn

    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 16))
        x = torch.empty(1, 4, 8, requires_grad=True)  # as a hidden layer's input: the weight is saved too
    # Linear saves its input (4 x 8 fp32 = 128 bytes) and its weight (a parameter: not an activation)
    assert plan.activation_bytes(model, {"input": x}, "fp32")["math_attention"] == 128


def test_table_names_and_the_paper_tables_found():
    assert plan.table_of("table3b-st5x8x8.yaml") == "3b" and plan.table_of("walt-L.yaml") is None
    tables = plan.paper_table_specs(ROOT)
    assert {"1", "2", "3a", "3b", "3c", "3d", "3e", "3f", "4"} <= set(tables)
    assert len(tables["3b"]) == 4 and all(path.exists() for _, path, _, _ in tables["3b"])


def test_table4_falls_back_to_labelled_overrides_when_no_spec_file_exists(tmp_path):
    (tmp_path / "experiments/ablations").mkdir(parents=True)
    (tmp_path / "experiments/ablations/table3a-patch1.yaml").write_text("base: x\n")
    tables = plan.paper_table_specs(tmp_path)
    assert [name for name, *_ in tables["4"]] == ["table4-L-separate-adaln", "table4-XL-r2"]
    assert all("no table4" in note for *_, note in tables["4"])


def _bench_json(tmp_path, denoiser: dict, device="cuda") -> Path:
    result = {
        "git": {"commit": "abcdef1234567890"},
        "device": {"type": device, "name": "GPU X"},
        "sections": {
            "peak": {"peak_flops_per_s": 5e14},
            "denoiser": {
                "size": "L",
                "batch": 8,
                "geometry": {"depth": 24, "hidden_size": 1024, "latent": [5, 16, 16]},
                **denoiser,
            },
        },
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(result))
    return path


def test_throughput_from_bench_prefers_the_datasheet_mfu_on_a_known_gpu(tmp_path):
    t = plan.throughput_from_bench(
        _bench_json(tmp_path, {"mfu": 0.6, "mfu_datasheet": 0.3, "datasheet_peak_flops_per_s": 1e15})
    )
    assert (t.peak_flops, t.mfu) == (1e15, 0.3) and "measured by walt-bench bench" in t.mfu_source
    t = plan.throughput_from_bench(_bench_json(tmp_path, {"mfu": 0.6}, device="cpu"))
    assert (t.peak_flops, t.mfu) == (5e14, 0.6) and "hours of that device" in t.peak_source


def test_plan_command_writes_json_and_markdown_and_labels_an_assumed_mfu(tmp_path, capsys):
    from walt_bench import cli

    out = tmp_path / "plan.json"
    assert cli.main(["plan", "--spec", str(SMOKE), "--mfu", "0.25", "--out", str(out), "train.steps=10"]) == 0
    result = json.loads(out.read_text())
    assert result["throughput"]["mfu"] == 0.25 and result["throughput"]["mfu_source"].startswith("assumed")
    assert result["throughput"]["peak_source"].startswith("datasheet: H100 SXM")
    assert result["spec"]["steps"] == 10
    assert "GPU-hours" in out.with_suffix(".md").read_text()
    assert cli.main(["plan", "--spec", str(SMOKE), "--mfu", "1.5"]) == 2
    assert cli.main(["plan"]) == 2


def test_plan_applies_a_scale_overlay(tmp_path):
    from walt_bench import cli

    out = tmp_path / "small.json"
    spec = str(ROOT / "experiments/ablations/table3d-r2.yaml")
    assert cli.main(["plan", "--spec", spec, "--scale", "small", "--out", str(out)]) == 0
    small = json.loads(out.read_text())
    as_written = plan.plan_spec(load_spec(spec), _throughput())
    assert small["scale"] == "small" and small["spec"]["steps"] == load_spec(spec, scale="small").train.steps
    assert small["spec"]["params"] < as_written["params"]  # W.A.L.T-B instead of L


def test_plan_tables_apply_the_scale_to_every_spec(monkeypatch, tmp_path):
    from walt_bench import cli

    r2 = ROOT / "experiments/ablations/table3d-r2.yaml"
    monkeypatch.setattr(plan, "paper_table_specs", lambda root: {"3d": [("table3d-r2", r2, (), "")]})
    out = tmp_path / "tables.json"
    assert cli.main(["plan", "--tables", "--scale", "small", "--root", str(ROOT), "--out", str(out)]) == 0
    row = json.loads(out.read_text())["tables"]["tables"]["3d"]["specs"][0]
    assert row["steps"] == load_spec(r2, scale="small").train.steps != load_spec(r2).train.steps
