"""Timing, peak step memory, matmul peak FLOP/s and MFU: the measuring instruments of ``walt-bench bench``.

Timing: ``warmup`` untimed calls, then ``repeats`` timed calls (CUDA is synchronised around each); a result
keeps the median, min and max seconds per call, and rates derived from them (median rate = work / median
time; the rate's min/max come from the slowest/fastest call).

Peak step memory = the highest live tensor bytes during one call minus the live bytes when it started, i.e.
what the step itself allocates on top of the weights and optimizer state already held (activations,
gradients, temporaries). How it is measured:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus ``memory_allocated``
  at the start (the caching allocator's own view of live tensors).
- CPU: torch's profiler with ``profile_memory=True`` records every tensor allocation and free of the call
  (``[memory]`` events); the peak of their running sum is the peak. ``tracemalloc`` does not see torch's
  allocations, and the process RSS mixes in the allocator's cached pages and earlier cases, so neither is
  used. The profiled call is an extra, untimed call.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


# -- timing ------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(seconds: list[float]) -> dict:
    """Median, min and max of per-call times (seconds)."""
    if not seconds:
        raise ValueError("no timed calls (repeats must be >= 1)")
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": len(seconds),
        "all_s": [round(s, 6) for s in seconds],
    }


def time_calls(fn: Callable[[], object], *, warmup: int, repeats: int, device: torch.device) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; :func:`summarize` of the times."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - t0)
    return summarize(seconds)


def rates(timing: dict, work: float) -> dict:
    """``work`` per second at the median, slowest (min) and fastest (max) call."""
    return {
        "median": work / timing["median_s"],
        "min": work / timing["max_s"],
        "max": work / timing["min_s"],
    }


# -- memory ------------------------------------------------------------------------------------------
def peak_from_memory_events(events: list[tuple[float, int]]) -> int:
    """Peak of the running sum of (timestamp, bytes) allocation (+) / free (-) events, from 0 at the start."""
    running, peak = 0, 0
    for _, nbytes in sorted(events, key=lambda e: e[0]):
        running += nbytes
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the profiler's native start/stop lines (file descriptor 2) for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cpu_memory_events(fn: Callable[[], object]) -> list[tuple[float, int]]:
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        trace = json.loads(path.read_text())
    return [
        (float(e["ts"]), int(e["args"]["Bytes"]))
        for e in trace.get("traceEvents", [])
        if e.get("name") == "[memory]" and int(e["args"].get("Device Type", 0)) == 0
    ]


def step_peak_memory(fn: Callable[[], object], device: torch.device) -> dict:
    """Peak bytes one call of ``fn`` allocates above what was live when it started (see the module doc)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {
            "step_bytes": peak - base,
            "peak_allocated_bytes": peak,
            "method": CUDA_METHOD,
        }
    return {
        "step_bytes": peak_from_memory_events(_cpu_memory_events(fn)),
        "method": CPU_METHOD,
    }


CUDA_METHOD = "torch.cuda.max_memory_allocated() during the step - memory_allocated() at its start"
CPU_METHOD = (
    "torch.profiler(profile_memory=True): peak of the running sum of the step's tensor allocations and "
    "frees (an extra, untimed step)"
)


# -- FLOP/s ------------------------------------------------------------------------------------------
def matmul_flops(n: int) -> float:
    """FLOPs of one n x n @ n x n matmul (a multiply-add = 2 FLOPs)."""
    return 2.0 * n**3


def measure_matmul_peak(
    device: torch.device, dtype: torch.dtype, *, n: int, warmup: int, repeats: int
) -> dict:
    """The device's attainable dense matmul FLOP/s: best and median of ``repeats`` n x n matmuls."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timing = time_calls(lambda: a @ b, warmup=warmup, repeats=repeats, device=device)
    flops = rates(timing, matmul_flops(n))
    return {
        "n": n,
        "dtype": str(dtype).replace("torch.", ""),
        "timing": timing,
        "flops_per_s": flops,
        "peak_flops_per_s": flops["max"],  # the best call: what the device can reach
    }


def mfu(flops_per_sample: float, samples_per_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation of one device: achieved model FLOP/s over the peak (the engine's formula)."""
    from walt_bench.engine.throughput import mfu as engine_mfu

    if peak_flops_per_s <= 0:
        raise ValueError(f"peak FLOP/s must be positive, got {peak_flops_per_s}")
    return engine_mfu(flops_per_sample, samples_per_s, 1, peak_flops_per_s)
