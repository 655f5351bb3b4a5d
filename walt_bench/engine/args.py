"""Command-line flags every trainer shares (argparse only; importing this module is cheap).

parser = subparsers.add_parser("train", ...)
add_train_arguments(parser)
...
train(..., resume=args.resume, allow_spec_mismatch=args.allow_spec_mismatch,
      stop_at_step=args.stop_at_step)
"""

from __future__ import annotations

import argparse


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
        type=int,
        default=None,
        help="End this invocation after this step with a checkpoint (resume later with --resume auto).",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
