"""Argument helpers shared by every command module (argparse only; cheap to import, imports nothing of walt_bench).

Command modules import from here, never from ``cli.py``: nothing imports ``cli.py`` but ``__main__``.
"""

from __future__ import annotations

import argparse


def add_spec_args(parser: argparse.ArgumentParser, *, flag: bool = True) -> None:
    """``--spec FILE`` (or a positional FILE) plus trailing ``key=value`` overrides."""
    if flag:
        parser.add_argument("--spec", required=True, metavar="FILE", help="experiment spec (YAML)")
    else:
        parser.add_argument("spec", metavar="FILE", help="experiment spec (YAML)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. model.lora_rank=16"
    )
