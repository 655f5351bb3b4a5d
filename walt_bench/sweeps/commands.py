"""``walt-bench sweep --study FILE [--scale S] [--workers N] [--storage URL] [--results DIR] [k=v ...]``.

Runs an Optuna study that redoes an ablation table (``sweeps/study.py``): every variant of the study file once,
on N worker processes, resumable, with each trial a child run of the study's MLflow run and a result JSON under
``--results`` (``<results>/<table>/<variant>.json``, what ``walt-bench report`` reads). Trailing ``key=value``
overrides apply to every trial (e.g. ``sweep.max_retries=2``, ``train.steps=200``).

    walt-bench sweep --study experiments/studies/table3c.yaml --scale smoke --workers 2
    optuna-dashboard sqlite:///optuna.db --host 127.0.0.1      # the same storage, in a browser
    mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run an ablation study (Optuna): every variant of a study file once, on N workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study", required=True, metavar="FILE", help="study file (experiments/studies/*.yaml)")
    p.add_argument(
        "--scale", default=None, metavar="smoke|small|paper", help="scale overlay (default: the study's)"
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (one GPU each when GPUs exist)")
    p.add_argument("--storage", default=None, metavar="URL", help="Optuna storage (default: sweep.storage)")
    p.add_argument("--results", default="results", metavar="DIR", help="where result JSONs go (results/)")
    p.add_argument("--mlflow-uri", default=None, metavar="URI", help="tracking URI (default: tracking.uri)")
    p.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every trial")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from walt_bench.sweeps.study import run_study, worker

    if args.workers < 1:
        from walt_bench.errors import UserError

        raise UserError(f"--workers: got {args.workers} - give 1 or more")
    if args.worker is not None:  # one worker process, started by the launcher below
        worker(
            args.study,
            args.scale,
            args.storage,
            args.results,
            list(args.overrides),
            index=args.worker,
            workers=args.workers,
            progress=args.progress,
        )
        return 0
    summary = run_study(
        args.study,
        scale=args.scale,
        workers=args.workers,
        storage=args.storage,
        results_dir=args.results,
        mlflow_uri=args.mlflow_uri,
        overrides=list(args.overrides),
        progress=args.progress,
    )
    print(
        f"\nstudy {summary['name']}: {summary['complete']}/{summary['variants']} variants complete "
        f"in {summary['wall_s']:.0f} s"
    )
    for t in summary["trials"]:
        values = ", ".join(f"{v:.4g}" for v in t["values"] or [])
        print(
            f"  #{t['number']:<3} {t['variant']:<24} {t['state']:<9} {values}{'  ' + t['error'] if t['error'] else ''}"
        )
    return 0 if summary["complete"] == summary["variants"] else 1
