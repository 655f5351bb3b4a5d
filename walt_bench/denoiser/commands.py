"""``walt-bench model info --spec FILE [k=v ...]``: parameter counts, tokens and FLOPs of a spec's denoiser.

The model is built on ``torch.device("meta")``, so even the 3B text-to-video base is counted in about
a second without allocating its weights. Prints JSON (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import sys

from walt_bench.cliargs import add_spec_args, spec_from_args


def register(subparsers) -> None:
    model = subparsers.add_parser("model", help="inspect the W.A.L.T denoiser a spec builds")
    sub = model.add_subparsers(dest="model_command", required=True, metavar="{info}")
    info = sub.add_parser(
        "info", help="JSON: parameter count (total and by part), tokens per sample, FLOPs per training sample"
    )
    add_spec_args(info)
    info.add_argument("--text-len", type=int, default=None, help="text tokens for cross-attention FLOPs (77)")
    info.add_argument("--out", default=None, metavar="FILE", help="also write the JSON here")
    info.set_defaults(handler=_model_info)


def _model_info(args: argparse.Namespace) -> int:
    import torch

    from walt_bench import __version__
    from walt_bench.denoiser.info import model_info
    from walt_bench.denoiser.model import build_denoiser

    spec = spec_from_args(args)
    model = build_denoiser(spec, device="meta")
    info = model_info(model, text_len=args.text_len)
    result = {
        "spec_hash": spec.hash,
        "spec": str(args.spec),
        "overrides": list(args.overrides),
        "command": "walt-bench model info",
        "versions": {"walt_bench": __version__, "torch": torch.__version__},
        **info,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    sys.stdout.write(text + "\n")
    params = info["params"]["total"]
    print(
        f"{spec.model.size}: {params / 1e6:.1f}M params, {info['tokens_per_sample']} tokens/sample, "
        f"{info['train_flops_per_sample'] / 1e12:.2f} TFLOPs per training sample",
        file=sys.stderr,
    )
    return 0
