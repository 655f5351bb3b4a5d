"""``walt-bench report``: our result files beside the paper's numbers (Markdown, CSV, LaTeX, PNG).

walt-bench report [--results results/] [--out reports/] [--tables 3c,3d] [--scale smoke] [--no-plots]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from walt_bench.errors import UserError


def _table_ids(text: str) -> list[str]:
    from walt_bench.report.paper import TABLES

    ids = [t.strip().removeprefix("table") for t in text.split(",") if t.strip()]
    bad = [t for t in ids if t not in TABLES]
    if bad or not ids:
        raise UserError(f"--tables {text!r}: unknown table(s) {bad}; choose from {', '.join(TABLES)}")
    return ids


def _report(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if not results.is_dir():
        raise UserError(
            f"results folder {results} does not exist. Result files (JSON, format walt_bench.result/1) are "
            "written by the pipelines (walt-bench demo, dvc repro, walt-bench sweep); pass --results DIR "
            "to read them from elsewhere."
        )
    tables = _table_ids(args.tables) if args.tables else None
    from walt_bench.report.build import write_report
    from walt_bench.report.results import ResultFileWarning

    with warnings.catch_warnings():  # each problem is printed once below, without a traceback line
        warnings.simplefilter("ignore", ResultFileWarning)
        summary = write_report(results, args.out, tables, scale=args.scale, plots=not args.plots_off)
    for problem in summary.problems:
        print(f"warning: {problem}", file=sys.stderr)
    shown = sum(t.has_results for t in summary.tables)
    print(
        f"report: {summary.num_results} result file(s) from {results}, {shown}/{len(summary.tables)} "
        f"table(s) with results of ours"
    )
    for t in summary.tables:
        taus = "; ".join(f"{o.metric} τ={'n/a' if o.tau is None else f'{o.tau:+.2f}'}" for o in t.orderings)
        filled = sum(r.result.status == "complete" for r in t.rows.values())
        print(f"  table {t.table.id}: {filled}/{len(t.table.variants)} rows{f', {taus}' if taus else ''}")
    print(f"wrote {len(summary.files)} files to {summary.out_dir}/ (index: {summary.out_dir / 'README.md'})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="tables (Markdown, CSV, LaTeX) and plots of our results beside the paper's numbers",
        description=(
            "Read every result file (walt_bench.result/1 JSON) under --results and write Tables 1, 2, "
            "3a-3f, 4 and 5 beside the paper's numbers, Kendall tau of each ablation's ordering, plots "
            "and an index (README.md) into --out. Missing results show as missing, never as zeros."
        ),
    )
    p.add_argument("--results", default="results", metavar="DIR", help="folder searched for result files")
    p.add_argument("--out", default="reports", metavar="DIR", help="where the report is written")
    p.add_argument("--tables", metavar="IDS", help="comma-separated tables, e.g. 3c,3d (default: all)")
    p.add_argument(
        "--scale",
        choices=("smoke", "small", "paper"),
        help="use only results at this scale (default: per row, the largest scale present)",
    )
    p.add_argument("--no-plots", dest="plots_off", action="store_true", help="tables only (no matplotlib)")
    p.set_defaults(handler=_report)
