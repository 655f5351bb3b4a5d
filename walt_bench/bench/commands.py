"""``walt-bench bench`` and ``walt-bench plan``: measure speed and memory, and plan training runs.

walt-bench bench --device cpu --out benchmarks/cpu-<name>.json          # a few minutes on 2 CPU cores
walt-bench bench --device cuda --out benchmarks/cuda-<gpu>.json          # W.A.L.T-L, bf16 autocast
walt-bench bench --only attention --repeats 5                           # one section
walt-bench plan --spec experiments/tables/table1-ucf101-L.yaml --bench benchmarks/cuda-<gpu>.json
walt-bench plan --tables --mfu 0.4 --gpu "H100 SXM"                      # every paper table's GPU-hours
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from walt_bench.bench.report import REPO
from walt_bench.cliargs import add_spec_args

DEFAULT_SPECS = {"cpu": "experiments/smoke/default.yaml", "cuda": "experiments/models/walt-L.yaml"}
# Per-device defaults: CPU ones finish in a few minutes on 2 cores; CUDA ones size W.A.L.T-L for one GPU.
DEVICE_DEFAULTS = {
    "cpu": dict(
        batch=4,
        tokenizer_batch=2,
        attn_depth=2,
        attn_width=128,
        attn_heads=4,
        attn_batch=1,
        sample_batch=4,
        eval_batch=1,
        matmul_n=2048,
        repeats=3,
        warmup=1,
    ),
    "cuda": dict(
        batch=8,
        tokenizer_batch=2,
        attn_depth=4,
        attn_width=1024,
        attn_heads=16,
        attn_batch=4,
        sample_batch=8,
        eval_batch=16,
        matmul_n=8192,
        repeats=10,
        warmup=3,
    ),
}


def _grid(text: str) -> tuple[int, int, int]:
    try:
        t, h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"latent grid {text!r}: expected TxHxW, e.g. 5x32x32") from None
    return t, h, w


def _spec_path(given: str | None, device: str) -> str:
    if given:
        return given
    rel = DEFAULT_SPECS[device]
    return rel if Path(rel).exists() else str(REPO / rel)


def register(subparsers) -> None:
    from walt_bench.bench.sections import EXTRACTORS, SECTIONS

    bench = subparsers.add_parser(
        "bench",
        help="throughput, MFU and peak memory of training, window vs full attention, sampling, evaluators",
        description="Benchmarks after warm-up (median, min, max of repeats); writes JSON and a Markdown "
        "table. Defaults finish in a few minutes on 2 CPU cores (--device cpu) or size W.A.L.T-L for one "
        "GPU (--device cuda).",
    )
    bench.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    # --spec default per device: cpu experiments/smoke/default.yaml, cuda experiments/models/walt-L.yaml
    bench.add_argument("--out", metavar="FILE.json", help="write JSON here and the Markdown table beside it")
    add_spec_args(bench, required=False)
    bench.add_argument(
        "--only",
        action="append",
        metavar="SECTION",
        help=f"run only these sections (repeat or comma-separate): {', '.join(SECTIONS)}",
    )
    bench.add_argument("--repeats", type=int, help="timed calls per case (cpu 3, cuda 10)")
    bench.add_argument("--warmup", type=int, help="untimed calls before timing (cpu 1, cuda 3)")
    bench.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on CUDA"
    )
    bench.add_argument("--compile", action="store_true", help="torch.compile the trained/sampled models")
    bench.add_argument("--batch", type=int, help="denoiser training batch (cpu 4, cuda 8)")
    bench.add_argument("--tokenizer-batch", type=int, help="tokenizer training batch (2)")
    bench.add_argument(
        "--attn-grids",
        type=lambda s: tuple(_grid(g) for g in s.split(",")),
        default=((5, 16, 16), (5, 32, 32), (5, 32, 56)),
        metavar="TxHxW,...",
        help="latent grids of the window/full comparison (5x16x16,5x32x32,5x32x56)",
    )
    bench.add_argument("--attn-depth", type=int, help="layers of the window/full comparison (cpu 2, cuda 4)")
    bench.add_argument(
        "--attn-width", type=int, help="hidden size of the window/full comparison (cpu 128, cuda 1024)"
    )
    bench.add_argument("--attn-heads", type=int, help="heads of the window/full comparison (cpu 4, cuda 16)")
    bench.add_argument("--attn-batch", type=int, help="batch of the window/full comparison (cpu 1, cuda 4)")
    bench.add_argument("--sample-batch", type=int, help="clips per sampling call (cpu 4, cuda 8)")
    bench.add_argument(
        "--sample-steps", type=int, help="DDIM steps (default: the spec's diffusion.sample_steps)"
    )
    bench.add_argument("--eval-batch", type=int, help="clips per extractor call (cpu 1, cuda 16)")
    bench.add_argument(
        "--extractors",
        default=",".join(EXTRACTORS),
        help=f"comma-separated extractors to time ({','.join(EXTRACTORS)})",
    )
    bench.add_argument(
        "--matmul-n", type=int, help="matrix size of the peak-FLOP/s matmul (cpu 2048, cuda 8192)"
    )
    bench.set_defaults(handler=_bench)

    from walt_bench.bench import plan

    plan.register(subparsers)


def _bench(args: argparse.Namespace) -> int:
    import torch

    from walt_bench.bench.report import to_markdown, write_results
    from walt_bench.bench.sections import EXTRACTORS, SECTIONS, BenchConfig, run_bench
    from walt_bench.errors import UserError
    from walt_bench.spec import load_spec

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("bench --device cuda: no CUDA device is visible to torch (use --device cpu)")
    only = tuple(x for item in (args.only or [",".join(SECTIONS)]) for x in item.split(",") if x)
    bad = [x for x in only if x not in SECTIONS]
    extractors = tuple(x for x in args.extractors.split(",") if x)
    bad += [f"extractor {x}" for x in extractors if x not in EXTRACTORS]
    if bad:
        raise UserError(
            f"bench: unknown {bad}; sections: {', '.join(SECTIONS)}; extractors: {', '.join(EXTRACTORS)}"
        )
    spec = load_spec(_spec_path(args.spec, device), args.overrides, scale=args.scale)
    opts = dict(DEVICE_DEFAULTS[device])
    for key in opts:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    if (
        min(opts["repeats"], opts["batch"], opts["tokenizer_batch"], opts["attn_batch"]) < 1
        or opts["warmup"] < 0
    ):
        raise UserError("bench: --repeats and batch sizes must be >= 1, --warmup >= 0")
    cfg = BenchConfig(
        spec=spec,
        device=torch.device(device),
        precision=args.precision,
        compile=args.compile,
        attn_grids=args.attn_grids,
        sample_steps=args.sample_steps,
        extractors=extractors,
        **opts,
    )
    command = "walt-bench " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "walt-bench bench"
    result = run_bench(cfg, only, command=command, log=lambda m: print(m, file=sys.stderr))
    text = to_markdown(result)
    sys.stdout.write(text)
    if args.out:
        json_path, md_path = write_results(result, args.out)
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0
