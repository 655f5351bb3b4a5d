"""Command-line flags every trainer shares (argparse only; importing this module is cheap).

parser = subparsers.add_parser("train", ...)
add_train_arguments(parser)
...
train(..., resume=args.resume, allow_spec_mismatch=args.allow_spec_mismatch,
      stop_at_step=args.stop_at_step)
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the option and exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a step >= 1, got {value}")
    return value


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--resume``, ``--allow-spec-mismatch``, ``--stop-at-step`` and ``--no-progress`` to a trainer's parser
    (``walt-bench train`` and ``walt-bench tokenizer train`` take the same flags)."""
    parser.add_argument(
        "--resume",
        default="auto",
        metavar="auto|never|PATH",
        help="auto (default): continue from the newest checkpoint in the run directory; never: start fresh "
        "(the earlier checkpoints, metrics.jsonl and summary.json are moved to checkpoints/replaced-<time>/); "
        "or a checkpoint path.",
    )
    parser.add_argument(
        "--allow-spec-mismatch",
        action="store_true",
        help="Load a checkpoint written by a different spec (the differing fields are printed as a warning).",
    )
    parser.add_argument(
        "--stop-at-step",
        type=positive_int,
        metavar="STEP",
        default=None,
        help="End this invocation after this step with a checkpoint (resume later with --resume auto).",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
