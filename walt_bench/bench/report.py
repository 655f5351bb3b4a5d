"""``walt-bench bench`` results: the run record (device, commit, command, load) and its Markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> dict:
    """The code's commit and whether the work tree had uncommitted changes (``unknown`` outside git)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return {"commit": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_info(device: torch.device) -> dict:
    from walt_bench.bench.threads import usable_cpus

    info = {
        "type": device.type,
        "cpu": cpu_name(),
        "usable_cpus": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=torch.cuda.get_device_name(device),
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            sdpa_enabled={
                "flash": torch.backends.cuda.flash_sdp_enabled(),
                "memory_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                "math": torch.backends.cuda.math_sdp_enabled(),
            },
        )
    else:
        info["name"] = info["cpu"]
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_results(result: dict, out: str | Path) -> tuple[Path, Path]:
    """``OUT.json`` and ``OUT.md`` (the Markdown table) beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out if out.suffix == ".json" else out.with_suffix(out.suffix + ".json")
    md_path = json_path.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(to_markdown(result))
    return json_path, md_path


# -- Markdown ----------------------------------------------------------------------------------------------
def _si(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def _mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:,.1f} MiB"


def _rate(r: dict, unit: str) -> str:
    return f"{r['median']:.3g} {unit} ({r['min']:.3g}–{r['max']:.3g})"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def to_markdown(result: dict) -> str:
    """A short report: header (device, commit, command, load) and one table per section."""
    dev, s = result["device"], result["sections"]
    commit = result["git"]["commit"][:12] + (" (uncommitted changes)" if result["git"].get("dirty") else "")
    lines = [
        f"# walt-bench bench: {dev['type']} ({dev.get('name', '')})",
        "",
        f"- command: `{result['command']}`",
        f"- commit: `{commit}`; date: {result['date']}; torch {dev['torch']}; threads {dev['torch_threads']} "
        f"(usable CPUs {dev['usable_cpus']}, OMP_NUM_THREADS={dev['OMP_NUM_THREADS']})",
        f"- load average (1, 5, 15 min) at start {result.get('load_average_start')}, end "
        f"{result.get('load_average_end')}; warm-up {result['settings']['warmup']}, repeats "
        f"{result['settings']['repeats']}; rates are median (slowest–fastest call)",
        f"- peak memory: {result.get('memory_method', '-')}",
        "",
    ]
    if "peak" in s:
        p = s["peak"]
        lines += [
            "## Device peak (dense matmul)",
            "",
            "| n | dtype | best | median |",
            "|---|---|---|---|",
            f"| {p['n']} | {p['dtype']} | {_si(p['flops_per_s']['max'], 'FLOP/s')} | "
            f"{_si(p['flops_per_s']['median'], 'FLOP/s')} |",
            "",
        ]
    train_rows = []
    for name in ("denoiser", "tokenizer"):
        if name in s:
            r = s[name]
            tokens = r.get("tokens_per_s") or r.get("latent_tokens_per_s")
            train_rows.append(
                f"| {name} | {_si(r['params'])} | {r['batch']} | {_rate(r['samples_per_s'], '/s')} | "
                f"{_si(tokens['median'], '/s')} | {_si(r['train_flops_per_sample'], 'FLOP')} | "
                f"{_pct(r.get('mfu'))} | {_pct(r.get('mfu_datasheet'))} | {_mib(r['memory']['step_bytes'])} |"
            )
    if train_rows:
        lines += [
            "## Training step",
            "",
            "| model | params | batch | samples/s | tokens/s | FLOPs/sample | MFU (measured peak) | "
            "MFU (datasheet) | peak step memory |",
            "|---|---|---|---|---|---|---|---|---|",
            *train_rows,
            "",
        ]
        if "denoiser" in s:
            d = s["denoiser"]
            g = d["geometry"]
            lines += [
                f"Denoiser: {d['size']} ({g['depth']} layers x {g['hidden_size']}, {g['num_heads']} heads), latent "
                f"{'x'.join(map(str, g['latent']))}, windows {'x'.join(map(str, g['spatial_window']))} / "
                f"{'x'.join(map(str, g['st_window']))}, attention kernel(s): {', '.join(d['attention_kernels'])}.",
                "",
            ]
    if "attention" in s:
        a = s["attention"]
        lines += [
            f"## Windowed vs full attention (training step; {a['depth']} layers x {a['hidden_size']}, "
            f"{a['num_heads']} heads, batch {a['batch']})",
            "",
            "| latent grid | windows (spatial / st) | windowed step | full step | speed-up (full / windowed) | "
            "windowed memory | full memory | memory ratio (full / windowed) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in a["grids"]:
            w, f = row["windowed"], row["full"]
            lines.append(
                f"| {'x'.join(map(str, row['latent']))} | {'x'.join(map(str, w['spatial_window']))} / "
                f"{'x'.join(map(str, w['st_window']))} | {w['timing']['median_s']:.3f} s | "
                f"{f['timing']['median_s']:.3f} s | **{row['speedup']:.2f}x** | {_mib(w['memory']['step_bytes'])} | "
                f"{_mib(f['memory']['step_bytes'])} | **{row['memory_ratio']:.2f}x** |"
            )
        lines.append("")
    if "sampling" in s:
        r = s["sampling"]
        lines += [
            "## Sampling (DDIM + decode)",
            "",
            "| batch | DDIM steps | clips/s | decode share |",
            "|---|---|---|---|",
            f"| {r['batch']} | {r['ddim_steps']} | {_rate(r['clips_per_s'], '/s')} | {_pct(r['decode_share'])} |",
            "",
        ]
    if "extractors" in s:
        r = s["extractors"]
        lines += [
            "## Evaluator feature extraction",
            "",
            "| extractor | clip (T, 3, H, W) | batch | clips/s |",
            "|---|---|---|---|",
        ]
        for kind, e in r["extractors"].items():
            lines.append(
                f"| {kind} | {'x'.join(map(str, e['clip']))} | {r['batch']} | {_rate(e['clips_per_s'], '/s')} |"
            )
        lines.append("")
    for name, err in result.get("errors", {}).items():
        lines.append(f"- section {name} failed: {err}")
    return "\n".join(lines).rstrip() + "\n"
