"""CLI: ``walt-bench data synth`` and ``walt-bench data check``.

::

    walt-bench data synth --out data/synthetic [--videos 6] [--seed 0] [--classes 10] [--frames 32] [--size 64]
    walt-bench data check --spec experiments/smoke/xxx.yaml [data.root=/path ...] [--json report.json]

``check`` exits 0 when every item reads, 1 when any file is unreadable (each one is printed by path), and 2 on
bad input (spec, missing root), like every command.
"""

from __future__ import annotations

import argparse

from walt_bench.cliargs import add_spec_args, spec_from_args


def register(subparsers) -> None:
    """Add ``data`` with its sub-commands ``synth`` and ``check`` to the CLI's subparsers."""
    data = subparsers.add_parser("data", help="datasets: write the synthetic one, check a real one")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{synth,check}")

    synth = sub.add_parser("synth", help="write the embedded synthetic dataset in UCF-101's layout")
    synth.add_argument("--out", required=True, help="output folder (gets UCF-101/ and ucfTrainTestlist/)")
    synth.add_argument("--videos", type=int, default=6, help="videos per class (>= 3; default 6)")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    synth.add_argument("--classes", type=int, default=10, help="number of classes (1..100; default 10)")
    synth.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    synth.add_argument("--size", type=int, default=64, help="frame height = width, even (default 64)")
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that already holds other files (default: refuse a non-empty folder that is not "
        "the same synthetic dataset)",
    )
    synth.set_defaults(handler=run_synth)

    check = sub.add_parser(
        "check", help="read every item of a spec's dataset; list unreadable files (exit 1)"
    )
    add_spec_args(check)
    check.add_argument(
        "--splits", nargs="+", default=None, help="splits to read (default: all of the dataset)"
    )
    check.add_argument("--json", default=None, help="also write the full report as JSON here")
    check.set_defaults(handler=run_check)


def run_synth(args: argparse.Namespace) -> int:
    import time

    from walt_bench.data.synthetic import synthesize

    start = time.perf_counter()
    out = synthesize(
        args.out,
        videos=args.videos,
        seed=args.seed,
        num_classes=args.classes,
        frames=args.frames,
        size=args.size,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.classes} classes x {args.videos} videos ({args.frames} frames, {args.size}x{args.size}) "
        f"to {out} in {time.perf_counter() - start:.1f}s; read it with data.dataset=ucf101 data.root={out} "
        f"data.num_classes={args.classes}"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:

    spec = spec_from_args(args)
    return check_command(spec.data, splits=args.splits, json_path=args.json, spec_hash=spec.hash)


def check_command(cfg, *, splits=None, json_path=None, spec_hash=None) -> int:
    """Run the check for a DataConfig, print the summary, optionally write JSON; 1 if anything is unreadable."""
    import json
    import platform
    from pathlib import Path

    from walt_bench import __version__
    from walt_bench.data.check import check_dataset, format_report

    report = check_dataset(cfg, splits)
    print(format_report(report))
    if json_path:
        import decord
        import torch

        report = {
            "spec_hash": spec_hash,
            "command": "walt-bench data check",
            "versions": {
                "walt_bench": __version__,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "decord": decord.__version__,
            },
            **report,
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["unreadable"] else 0
