"""``walt-bench plan``: what a spec's training costs before it starts — FLOPs and activation memory per step,
and GPU-hours of the whole run (and of every paper table's set of specs).

    walt-bench plan --spec experiments/tables/table1-ucf101-L.yaml                    # assumed MFU 0.4, H100
    walt-bench plan --spec experiments/tables/table1-ucf101-L.yaml --bench benchmarks/cuda-h100.json
    walt-bench plan --tables --gpus 8 --out reports/plan.json                          # Tables 1, 2, 3a-f, 4
    walt-bench plan --tables --scale small --gpus 1                                    # the same at small scale

Arithmetic (one line each, in :func:`gpu_hours` and :func:`denoiser_cost`):

    FLOPs per sample  = 3 x forward (+ 1 forward for the self-conditioning pass when p_sc > 0; it runs on the
                        whole batch whenever any example draws it, §4.3)        [forward: denoiser.model_info]
    FLOPs of the run  = FLOPs per sample x train.batch_size x train.steps
    GPU-hours         = FLOPs of the run / (peak FLOP/s x MFU) / 3600

The peak is a datasheet number (dense bf16, ``engine.throughput.PEAK_FLOPS_BF16``; ``--gpu``) or
``--peak-tflops``; the MFU is measured by ``walt-bench bench`` (``--bench FILE``) or assumed (``--mfu``); the
output says which. The tokenizer's training (``tokenizer.train``) is costed the same way, with its FLOPs
counted by ``torch.utils.flop_counter`` on the meta device (autoencoder 3 x forward, discriminator 9 x
forward per sample once the GAN is on; the perceptual network is not counted), and within a table each
distinct tokenizer is counted once.

Activation memory = the bytes autograd saves for backward in one training forward of one sample, measured
on the meta device (nothing is allocated) with ``saved_tensors_hooks`` (parameters excluded), in the
planning dtype. The meta device runs attention on the unfused "math" path, which stores each window's
attention probabilities; fused kernels (flash / memory-efficient, the CUDA default) do not, so the figure
without them is reported too. Model state = weights + gradients + optimizer state (+ EMA) per parameter.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from walt_bench.cliargs import add_spec_args

TABLE_DIRS = ("experiments/tables", "experiments/ablations")
PAPER_TABLES = ("1", "2", "3a", "3b", "3c", "3d", "3e", "3f", "4")
DEFAULT_GPU = "H100 SXM"
ASSUMED_MFU = 0.4
# Table 4 (parameter-matched AdaLN comparison) has no spec files yet; until it does, plan costs these two
# runs as overrides of the base spec at the ablations' 35k steps (appendix: "ablation runs train 35k steps").
TABLE4_FALLBACK = (
    (
        "table4-L-separate-adaln",
        "experiments/base/default.yaml",
        ("model.adaln=separate", "train.steps=35000"),
    ),
    ("table4-XL-r2", "experiments/base/default.yaml", ("model.size=XL", "train.steps=35000")),
)
STATE_BYTES_PER_PARAM = {  # fp32 weights + fp32 gradients + optimizer state
    "adamw": 16,
    "adam": 16,
    "adafactor": 8,  # + factored second moments (rows + columns), negligible
}


@dataclass(frozen=True)
class Throughput:
    """Peak FLOP/s and MFU the plan assumes, with where each came from."""

    peak_flops: float
    peak_source: str
    mfu: float
    mfu_source: str
    tokenizer_mfu: float | None = None

    @property
    def flops_per_s(self) -> float:
        return self.peak_flops * self.mfu


def gpu_hours(total_flops: float, peak_flops: float, mfu: float) -> float:
    """Hours of one device at ``mfu`` of ``peak_flops`` to do ``total_flops``."""
    if peak_flops <= 0 or not 0 < mfu <= 1:
        raise ValueError(f"need peak > 0 and 0 < MFU <= 1, got peak={peak_flops}, mfu={mfu}")
    return total_flops / (peak_flops * mfu) / 3600.0


def denoiser_cost(forward_flops: float, *, self_condition: bool, batch_size: int, steps: int) -> dict:
    """FLOPs per sample, per optimizer step and for the run (see the module docstring)."""
    per_sample = 3.0 * forward_flops + (forward_flops if self_condition else 0.0)
    return {
        "flops_per_sample": per_sample,
        "flops_per_step": per_sample * batch_size,
        "total_flops": per_sample * batch_size * steps,
    }


# -- measuring on the meta device -------------------------------------------------------------------------
def _dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def activation_bytes(model, inputs: dict, dtype_name: str) -> dict:
    """Bytes saved for backward by one training forward of ``model`` (a meta-device WALT) on ``inputs``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    model = model.to(_dtype(dtype_name)).train()
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}
    probs: list = []  # softmax outputs (attention probabilities), kept alive so their ids stay unique

    class SoftmaxLog(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ in ("_safe_softmax", "_softmax", "softmax"):
                probs.append(out)
            return out

    def pack(t):
        storage = t.untyped_storage()
        if storage._cdata not in params:
            saved[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), SoftmaxLog():
        model(**{k: (v.to(_dtype(dtype_name)) if v.is_floating_point() else v) for k, v in inputs.items()})
    prob_ids = {p.untyped_storage()._cdata for p in probs}
    attn = sum(n for k, n in saved.items() if k in prob_ids)
    total = sum(saved.values())
    return {"math_attention": total, "fused_attention": total - attn, "attention_probabilities": attn}


def _inputs(model, spec) -> dict:
    """One sample's forward inputs on the meta device (the optional ones the model was built for)."""
    import torch

    t, h, w = model.latent_size
    c = model.latent_channels
    meta = torch.device("meta")
    inputs = {"z_t": torch.empty(1, t, c, h, w, device=meta), "t": torch.empty(1, device=meta)}
    if model.y_embedder is not None:
        inputs["class_labels"] = torch.zeros(1, dtype=torch.long, device=meta)
    if model.cfg.self_condition:
        inputs["self_cond"] = torch.empty(1, t, c, h, w, device=meta)
    if model.cfg.frame_condition:
        inputs["frame_cond"] = torch.empty(1, t, c + 1, h, w, device=meta)
    if model.cfg.lowres_condition:
        inputs["lowres"] = torch.empty(1, t, c, h // 2, w // 2, device=meta)
        inputs["noise_aug"] = torch.empty(1, device=meta)
    if model.text_proj is not None:
        inputs["text"] = torch.empty(1, 77, model.cfg.text_dim, device=meta)
    return inputs


@functools.lru_cache(maxsize=64)
def _denoiser_facts(key: str, dtype_name: str) -> dict:
    """Parameters, forward FLOPs and activation bytes of the denoiser a spec builds (cached by its fields)."""
    from walt_bench.denoiser.info import model_info
    from walt_bench.denoiser.model import build_denoiser
    from walt_bench.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(json.loads(key))
    model = build_denoiser(spec, device="meta")
    model.activation_checkpointing = spec.train.activation_checkpointing
    info = model_info(model)
    return {
        "params": info["params"]["total"],
        "tokens_per_sample": info["tokens_per_sample"],
        "forward_flops_per_sample": info["forward_flops_per_sample"],
        "activation_bytes_per_sample": activation_bytes(model, _inputs(model, spec), dtype_name),
    }


def _denoiser_key(spec) -> str:
    d = spec.to_dict()
    keep = {k: d[k] for k in ("model", "data", "tokenizer")}
    keep["train"] = {"activation_checkpointing": spec.train.activation_checkpointing}
    return json.dumps(keep, sort_keys=True)


def discriminator_forward_flops(spec) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from walt_bench.tokenizer.build import build_discriminator

    with torch.device("meta"):
        critic = build_discriminator(spec)
        x = torch.empty(1, spec.data.num_frames, 3, spec.data.height, spec.data.width)
    with FlopCounterMode(display=False) as counter:
        critic(x)
    return float(counter.get_total_flops())


@functools.lru_cache(maxsize=32)
def _tokenizer_facts(key: str) -> dict:
    from walt_bench.bench.sections import autoencoder_forward_flops
    from walt_bench.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(json.loads(key))
    clip = (spec.data.num_frames, 3, spec.data.height, spec.data.width)
    ae = autoencoder_forward_flops(spec.tokenizer, clip)
    disc = discriminator_forward_flops(spec) if spec.tokenizer.adversarial_weight > 0 else 0.0
    return {"autoencoder_forward_flops": ae, "discriminator_forward_flops": disc}


def tokenizer_cost(spec) -> dict:
    """FLOPs of the tokenizer's own training run (``tokenizer.train``)."""
    from walt_bench.tokenizer.build import tokenizer_hash

    d = spec.to_dict()
    facts = _tokenizer_facts(json.dumps({"data": d["data"], "tokenizer": d["tokenizer"]}, sort_keys=True))
    tcfg, tok = spec.tokenizer.train, spec.tokenizer
    gan_steps = max(0, tcfg.steps - tok.discriminator_start_step) if tok.adversarial_weight > 0 else 0
    ae = 3.0 * facts["autoencoder_forward_flops"]
    # GAN steps: D on real + fake, forward and backward (2 x 3), and the generator's D(x_hat) term (3)
    gan = 9.0 * facts["discriminator_forward_flops"]
    total = tcfg.batch_size * (tcfg.steps * ae + gan_steps * gan)
    return {
        "identity": tokenizer_hash(spec),
        "steps": tcfg.steps,
        "batch_size": tcfg.batch_size,
        "gan_steps": gan_steps,
        "flops_per_sample": ae,
        "gan_flops_per_sample": gan,
        "total_flops": total,
        "counted": "autoencoder 3 x forward; discriminator 9 x forward on GAN steps; perceptual network not counted",
        **facts,
    }


# -- one spec ------------------------------------------------------------------------------------------------
def plan_spec(spec, throughput: Throughput, *, gpus: int = 8, dtype: str = "bf16") -> dict:
    """The cost of ``spec``'s training: FLOPs, memory per step and GPU-hours (denoiser and tokenizer)."""
    facts = _denoiser_facts(_denoiser_key(spec), dtype)
    train = spec.train
    sc = spec.model.self_condition and spec.diffusion.p_sc > 0
    cost = denoiser_cost(
        facts["forward_flops_per_sample"], self_condition=sc, batch_size=train.batch_size, steps=train.steps
    )
    micro = max(1, train.batch_size // (gpus * train.grad_accum_steps))
    act = facts["activation_bytes_per_sample"]
    state_per_param = STATE_BYTES_PER_PARAM[train.optimizer] + (4 if train.ema else 0)
    state = facts["params"] * state_per_param
    hours = gpu_hours(cost["total_flops"], throughput.peak_flops, throughput.mfu)
    tok = tokenizer_cost(spec)
    tok_mfu = throughput.tokenizer_mfu or throughput.mfu
    tok["gpu_hours"] = gpu_hours(tok["total_flops"], throughput.peak_flops, tok_mfu)
    tok["mfu"] = tok_mfu
    return {
        "description": spec.description,
        "spec_hash": spec.hash,
        "params": facts["params"],
        "tokens_per_sample": facts["tokens_per_sample"],
        "steps": train.steps,
        "batch_size": train.batch_size,
        "forward_flops_per_sample": facts["forward_flops_per_sample"],
        "self_conditioning_pass": sc,
        **cost,
        "memory": {
            "dtype": dtype,
            "activation_bytes_per_sample": act,
            "micro_batch_per_gpu": micro,
            "activation_bytes_per_gpu": {
                k: v * micro for k, v in act.items() if k != "attention_probabilities"
            },
            "model_state_bytes": state,
            "model_state_bytes_per_param": state_per_param,
            "note": f"{train.optimizer} fp32 master weights + grads + optimizer state"
            + (" + EMA" if train.ema else "")
            + "; DDP holds all of it on every GPU, FSDP 1/gpus of it",
            "activation_checkpointing": train.activation_checkpointing,
        },
        "gpu_hours": hours,
        "wall_clock_hours": hours / gpus,
        "tokenizer": tok,
    }


# -- paper tables ------------------------------------------------------------------------------------------
def table_of(filename: str) -> str | None:
    """``table3b-st5x8x8.yaml`` -> ``3b``; None for other names."""
    m = re.match(r"table(\d+[a-z]?)-", filename)
    return m.group(1) if m else None


def paper_table_specs(root: Path) -> dict[str, list[tuple[str, Path, tuple[str, ...], str]]]:
    """{table: [(name, spec file, overrides, note)]} from ``experiments/tables`` and ``experiments/ablations``."""
    tables: dict[str, list] = {}
    for folder in TABLE_DIRS:
        for path in sorted((root / folder).glob("table*.yaml")):
            table = table_of(path.name)
            if table:
                tables.setdefault(table, []).append((path.stem, path, (), ""))
    if "4" not in tables:
        note = "no table4-*.yaml shipped: base spec + overrides, 35k steps (ablation length)"
        tables["4"] = [(name, root / base, ov, note) for name, base, ov in TABLE4_FALLBACK]
    order = {t: i for i, t in enumerate(PAPER_TABLES)}
    return dict(sorted(tables.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def plan_tables(
    root: Path, throughput: Throughput, *, gpus: int, dtype: str, scale: str | None = None, log=None
) -> dict:
    """Every paper table's specs (at ``scale``: an overlay such as ``small``), their GPU-hours and each table's
    sum (each tokenizer counted once)."""
    from walt_bench.spec import load_spec

    out: dict = {}
    all_tokenizers: dict[str, float] = {}
    for table, entries in paper_table_specs(root).items():
        rows, tokenizers = [], {}
        for name, path, overrides, note in entries:
            if log:
                log(f"plan: table {table}: {name}")
            spec = load_spec(path, list(overrides), scale=scale)
            p = plan_spec(spec, throughput, gpus=gpus, dtype=dtype)
            p.update(name=name, spec=str(path.relative_to(root)), overrides=list(overrides), note=note)
            rows.append(p)
            tokenizers[p["tokenizer"]["identity"]] = p["tokenizer"]["gpu_hours"]
        all_tokenizers.update(tokenizers)
        denoiser = sum(r["gpu_hours"] for r in rows)
        out[table] = {
            "specs": rows,
            "denoiser_gpu_hours": denoiser,
            "tokenizer_gpu_hours": sum(tokenizers.values()),
            "distinct_tokenizers": len(tokenizers),
            "gpu_hours": denoiser + sum(tokenizers.values()),
        }
    denoiser_total = sum(t["denoiser_gpu_hours"] for t in out.values())
    return {
        "tables": out,
        "total": {
            "denoiser_gpu_hours": denoiser_total,
            "tokenizer_gpu_hours": sum(all_tokenizers.values()),
            "distinct_tokenizers": len(all_tokenizers),
            "gpu_hours": denoiser_total + sum(all_tokenizers.values()),
        },
    }


# -- throughput assumptions ----------------------------------------------------------------------------------
def throughput_from_args(args: argparse.Namespace) -> Throughput:
    from walt_bench.engine.throughput import PEAK_FLOPS_BF16
    from walt_bench.errors import UserError

    if args.bench:
        return throughput_from_bench(args.bench)
    if args.peak_tflops:
        peak, source = args.peak_tflops * 1e12, f"given: {args.peak_tflops:g} TFLOP/s (--peak-tflops)"
    else:
        if args.gpu not in PEAK_FLOPS_BF16:
            raise UserError(
                f"plan --gpu {args.gpu!r}: known GPUs are {', '.join(PEAK_FLOPS_BF16)} (or --peak-tflops)"
            )
        peak = PEAK_FLOPS_BF16[args.gpu]
        source = f"datasheet: {args.gpu} dense bf16 {peak / 1e12:g} TFLOP/s (assumed GPU)"
    if not 0 < args.mfu <= 1:
        raise UserError(f"plan --mfu {args.mfu}: must be in (0, 1]")
    return Throughput(
        peak, source, args.mfu, f"assumed: {args.mfu:g} (--mfu; measure it with walt-bench bench)"
    )


def throughput_from_bench(path: str | Path) -> Throughput:
    """MFU and peak from a ``walt-bench bench`` JSON: the datasheet peak and MFU against it on a known GPU,
    else the peak measured there (a matmul) and MFU against that."""
    from walt_bench.errors import UserError

    try:
        result = json.loads(Path(path).read_text())
        sections, device = result["sections"], result["device"]
        den = sections["denoiser"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"plan --bench {path}: not a walt-bench bench JSON with a denoiser section ({exc}); "
            "run `walt-bench bench --only denoiser --out FILE.json`"
        ) from exc
    if "mfu_datasheet" in den:
        peak, mfu_value = den["datasheet_peak_flops_per_s"], den["mfu_datasheet"]
        peak_source = f"datasheet peak of the benched GPU ({device.get('name')}): {peak / 1e12:g} TFLOP/s"
    else:
        peak, mfu_value = sections["peak"]["peak_flops_per_s"], den["mfu"]
        peak_source = (
            f"matmul peak measured by bench on {device.get('type')} ({device.get('name')}): "
            f"{peak / 1e12:.3g} TFLOP/s, so hours are hours of that device"
        )
    g = den["geometry"]
    where = (
        f"measured by walt-bench bench ({path}, commit {result['git']['commit'][:12]}): {den['size']} "
        f"{g['depth']}x{g['hidden_size']} at latent {'x'.join(map(str, g['latent']))}, batch {den['batch']}"
    )
    tok = sections.get("tokenizer", {})
    tok_mfu = tok.get("mfu_datasheet", tok.get("mfu"))
    return Throughput(peak, peak_source, mfu_value, where, tok_mfu)


# -- command ---------------------------------------------------------------------------------------------------
def register(subparsers) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="FLOPs and memory per training step and GPU-hours of a spec (or of every paper table)",
        description="Cost a spec's training before running it. GPU-hours = FLOPs / (peak x MFU); MFU is "
        "measured (--bench FILE from walt-bench bench) or assumed (--mfu, labelled as such).",
    )
    add_spec_args(plan, required=False)  # --spec FILE (optional with --tables), --scale S, key=value
    plan.add_argument("--tables", action="store_true", help="every paper table's specs and their sums")
    plan.add_argument("--root", default=".", help="repository root holding experiments/ (for --tables)")
    plan.add_argument("--bench", metavar="FILE.json", help="take MFU and peak from a walt-bench bench result")
    plan.add_argument("--mfu", type=float, default=ASSUMED_MFU, help=f"assumed MFU (default {ASSUMED_MFU})")
    plan.add_argument(
        "--gpu", default=DEFAULT_GPU, help=f"datasheet peak of this GPU (default {DEFAULT_GPU!r})"
    )
    plan.add_argument("--peak-tflops", type=float, help="peak TFLOP/s per device instead of --gpu")
    plan.add_argument("--gpus", type=int, default=8, help="GPUs sharing the batch (micro-batch, wall clock)")
    plan.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="activation dtype (bf16)")
    plan.add_argument("--out", metavar="FILE.json", help="also write JSON here (and Markdown beside it)")
    plan.set_defaults(handler=_plan)


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h < 10 else f"{h:,.0f}"


def _gib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB"


def _spec_markdown(p: dict) -> list[str]:
    m, tok = p["memory"], p["tokenizer"]
    act = m["activation_bytes_per_sample"]
    return [
        f"- parameters {p['params'] / 1e6:,.1f}M, {p['tokens_per_sample']} tokens/sample",
        f"- FLOPs: {p['flops_per_sample'] / 1e12:,.3f} TFLOP/sample (3 x forward"
        + (" + self-conditioning forward" if p["self_conditioning_pass"] else "")
        + f"), {p['flops_per_step'] / 1e15:,.2f} PFLOP/step (batch {p['batch_size']}), "
        f"{p['total_flops'] / 1e18:,.1f} EFLOP in {p['steps']:,} steps",
        f"- activation memory ({m['dtype']}): {_gib(act['fused_attention'])}/sample with fused attention, "
        f"{_gib(act['math_attention'])}/sample with math attention; micro-batch {m['micro_batch_per_gpu']}/GPU -> "
        f"{_gib(m['activation_bytes_per_gpu']['fused_attention'])}/GPU (fused)",
        f"- model state: {_gib(m['model_state_bytes'])} ({m['model_state_bytes_per_param']} B/param; {m['note']})",
        f"- denoiser: **{p['gpu_hours']:,.0f} GPU-hours** ({p['wall_clock_hours']:,.1f} h on the GPUs)",
        f"- tokenizer ({tok['identity']}): {tok['total_flops'] / 1e18:,.1f} EFLOP, {tok['gpu_hours']:,.0f} GPU-hours "
        f"({tok['counted']})",
    ]


def to_markdown(result: dict) -> str:
    t = result["throughput"]
    lines = [
        "# walt-bench plan",
        "",
        f"- peak: {t['peak_source']}",
        f"- MFU: {t['mfu']:.3g} ({t['mfu_source']})",
        f"- GPUs: {result['gpus']}; scale: {result.get('scale') or 'as written'}; "
        "GPU-hours = FLOPs / (peak x MFU) / 3600",
        "",
    ]
    if "spec" in result:
        lines += [f"## {result['spec']['name']}", "", *_spec_markdown(result["spec"]), ""]
    if "tables" in result:
        lines += [
            "| table | spec | params | steps x batch | PFLOP/step | act. GiB/sample (fused) | GPU-hours |",
            "|---|---|---|---|---|---|---|",
        ]
        for table, entry in result["tables"]["tables"].items():
            for p in entry["specs"]:
                note = f" ({p['note']})" if p["note"] else ""
                lines.append(
                    f"| {table} | {p['name']}{note} | {p['params'] / 1e6:,.0f}M | {p['steps']:,} x {p['batch_size']} | "
                    f"{p['flops_per_step'] / 1e15:,.2f} | "
                    f"{p['memory']['activation_bytes_per_sample']['fused_attention'] / 2**30:,.2f} | "
                    f"{_hours(p['gpu_hours'])} |"
                )
            lines.append(
                f"| **{table}** | sum: denoisers {_hours(entry['denoiser_gpu_hours'])} + {entry['distinct_tokenizers']} "
                f"tokenizer(s) {_hours(entry['tokenizer_gpu_hours'])} | | | | | **{_hours(entry['gpu_hours'])}** |"
            )
        tot = result["tables"]["total"]
        lines += [
            "",
            f"All tables: denoisers {tot['denoiser_gpu_hours']:,.0f} + {tot['distinct_tokenizers']} distinct tokenizers "
            f"{tot['tokenizer_gpu_hours']:,.0f} = **{tot['gpu_hours']:,.0f} GPU-hours**.",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _plan(args: argparse.Namespace) -> int:
    from walt_bench.errors import UserError
    from walt_bench.spec import load_spec

    if not args.spec and not args.tables:
        raise UserError("plan: give --spec FILE [k=v ...] and/or --tables")
    if args.gpus < 1:
        raise UserError("plan --gpus must be >= 1")
    throughput = throughput_from_args(args)
    result: dict = {
        "command": "walt-bench plan",
        "throughput": {
            "peak_flops": throughput.peak_flops,
            "peak_source": throughput.peak_source,
            "mfu": throughput.mfu,
            "mfu_source": throughput.mfu_source,
            "tokenizer_mfu": throughput.tokenizer_mfu or throughput.mfu,
        },
        "gpus": args.gpus,
        "dtype": args.dtype,
        "scale": args.scale,
    }
    if args.spec:
        spec = load_spec(args.spec, args.overrides, scale=args.scale)
        p = plan_spec(spec, throughput, gpus=args.gpus, dtype=args.dtype)
        scale = f" --scale {args.scale}" if args.scale else ""
        p.update(
            name=f"{args.spec}{scale}" + "".join(f" {o}" for o in args.overrides),
            overrides=list(args.overrides),
        )
        result["spec"] = p
    if args.tables:
        result["tables"] = plan_tables(
            Path(args.root),
            throughput,
            gpus=args.gpus,
            dtype=args.dtype,
            scale=args.scale,
            log=lambda m: print(m, file=sys.stderr),
        )
    text = to_markdown(result)
    sys.stdout.write(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(text)
        print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0
