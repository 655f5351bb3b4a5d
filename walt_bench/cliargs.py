"""Argument helpers shared by every command module (argparse only; cheap to import, imports walt_bench lazily).

Command modules import from here, never from ``cli.py``: nothing imports ``cli.py`` but ``__main__``.
"""

from __future__ import annotations

import argparse


def add_spec_args(parser: argparse.ArgumentParser, *, flag: bool = True, required: bool = True) -> None:
    """``--spec FILE`` (or a positional FILE), ``--scale`` and trailing ``key=value`` overrides."""
    if flag:
        parser.add_argument("--spec", required=required, metavar="FILE", help="experiment spec (YAML)")
    else:
        parser.add_argument("spec", metavar="FILE", help="experiment spec (YAML)")
    parser.add_argument(
        "--scale",
        default=None,
        metavar="smoke|small|paper",
        help="apply experiments/scales/<scale>.yaml after the spec and before the overrides (default: the spec "
        "as written); smoke = synthetic data, tiny models, CPU; small = one GPU; paper = as written",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.lora_rank=16"
    )


def spec_from_args(args: argparse.Namespace):
    """The validated spec of ``--spec FILE [--scale S] [k=v ...]`` (imports the spec module lazily)."""
    from walt_bench.spec import load_spec

    return load_spec(args.spec, args.overrides, scale=getattr(args, "scale", None))
