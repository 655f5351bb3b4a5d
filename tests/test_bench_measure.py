"""walt_bench.bench.measure: timing statistics, rates, MFU arithmetic, peak step memory, matmul peak."""

from __future__ import annotations

import pytest
import torch

from walt_bench.bench import measure


def test_summarize_keeps_median_min_max_of_the_timed_calls():
    t = measure.summarize([4.0, 1.0, 2.0])
    assert (t["median_s"], t["min_s"], t["max_s"], t["repeats"]) == (2.0, 1.0, 4.0, 3)


def test_rates_divide_the_work_by_the_median_slowest_and_fastest_call():
    r = measure.rates({"median_s": 2.0, "min_s": 1.0, "max_s": 4.0}, work=8)
    assert r == {"median": 4.0, "min": 2.0, "max": 8.0}


def test_time_calls_runs_warmup_untimed_then_the_repeats():
    calls = []
    t = measure.time_calls(lambda: calls.append(1), warmup=2, repeats=3, device=torch.device("cpu"))
    assert len(calls) == 5 and t["repeats"] == 3 and len(t["all_s"]) == 3


def test_mfu_is_achieved_model_flops_over_peak():
    # 1 GFLOP per sample at 50 samples/s = 50 GFLOP/s on a 100 GFLOP/s device: 50 %
    assert measure.mfu(1e9, 50.0, 1e11) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        measure.mfu(1e9, 50.0, 0.0)


def test_matmul_flops_counts_a_multiply_add_as_two():
    assert measure.matmul_flops(3) == 54.0


def test_matmul_peak_is_the_best_call():
    p = measure.measure_matmul_peak(torch.device("cpu"), torch.float32, n=32, warmup=0, repeats=3)
    assert p["peak_flops_per_s"] == p["flops_per_s"]["max"] == 2 * 32**3 / p["timing"]["min_s"]


def test_peak_of_memory_events_is_the_highest_running_sum_in_time_order():
    events = [(3.0, 20), (0.0, 10), (2.0, -10), (1.0, 5), (4.0, -25)]  # running: 10, 15, 5, 25, 0
    assert measure.peak_from_memory_events(events) == 25


def test_cpu_step_peak_memory_sees_torch_allocations():
    mib = 2**20

    def step():
        a = torch.ones(mib // 4)  # 1 MiB of float32
        b = torch.ones(mib // 2)  # 2 MiB, while a is alive
        del a
        c = torch.ones(mib // 4)  # 1 MiB after a is freed: the peak stays 3 MiB
        return b, c

    m = measure.step_peak_memory(step, torch.device("cpu"))
    assert m["step_bytes"] == 3 * mib
    assert "profiler" in m["method"]
