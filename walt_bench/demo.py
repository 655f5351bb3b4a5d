"""``walt-bench demo``: the embedded default, end to end on CPU.

Runs the stage functions a sweep trial and the DVC pipeline also use (``walt_bench/stages.py``) on the smoke
spec (``experiments/smoke/default.yaml``): synthesize the dataset if it is missing and check it, train the
tokenizer, train the synthetic-data classifier behind the FVD-/IS-synthetic analogues, evaluate the tokenizer,
encode the latent cache, train W.A.L.T, sample, evaluate. Every stage lives at its identity
(``walt-bench status --spec FILE`` shows them), so a re-run reuses finished work: trainers resume (a finished
run returns at once), an up-to-date cache, samples and metrics are kept. It ends with
``<diffusion run dir>/demo.json``: every stage's record and wall time, and where to look (sample grid, metrics).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from walt_bench.cliargs import add_spec_args, spec_from_args
from walt_bench.errors import UserError

DEFAULT_SPEC = Path("experiments/smoke/default.yaml")
DEMO_CELL = (
    "3c",
    "p_sc=0.9",
)  # the smoke spec's row: Table 3c's default (also 3a p=1, 3b 5x8x8, 3d r=2, 3e full)
RESULTS = Path("results/demo")


def default_spec_path() -> Path:
    """The smoke spec in the working directory, else the one in this checkout of the repository."""
    if DEFAULT_SPEC.is_file():
        return DEFAULT_SPEC
    return Path(__file__).resolve().parents[1] / DEFAULT_SPEC


def run_demo(spec) -> dict:
    """Every stage of ``spec`` (synthesizing missing data); returns and writes the ``demo.json`` record."""
    from walt_bench.identity import stage_dir
    from walt_bench.stages import STAGES, run_stages

    if spec.data.dataset != "ucf101":
        raise UserError(
            f"demo: data.dataset={spec.data.dataset!r}; the demo runs on the synthetic (ucf101-layout) data"
        )

    def announce(i: int, name: str) -> None:
        print(f"\n=== [{i}/{len(STAGES)}] {name}", flush=True)

    start = time.perf_counter()
    record = run_stages(spec, synthesize_missing=True, on_stage=announce)
    stages = record["stages"]
    samples = Path(stages["samples"]["path"])
    metrics_file = Path(stages["metrics"]["path"])
    result = stages["metrics"]["result"]
    summary = {
        "spec_identity": {s: stage_dir(spec, s).name for s in ("tokenizer", "latents", "diffusion")},
        "wall_s": round(time.perf_counter() - start, 1),
        "stage_wall_s": record["wall_s"],
        "look_at": {
            "samples_grid": str(samples / "grid.gif"),
            "metrics": str(metrics_file),
            "tokenizer_reconstructions": stages["tokenizer_eval"].get("reconstructions"),
            "training_summary": str(Path(stages["diffusion"]["run_dir"]) / "summary.json"),
        },
        "metrics": {k: v for k, v in result.items() if isinstance(v, dict) and "mean" in v},
        "stages": stages,
    }
    run_dir = Path(stages["diffusion"]["run_dir"])
    summary["look_at"]["report"] = str(write_demo_report(spec, record, run_dir / "report"))
    (run_dir / "demo.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\ndemo finished in {summary['wall_s']:.0f} s; look at {summary['look_at']['samples_grid']}")
    for name, value in summary["metrics"].items():
        print(f"  {name}: {value['mean']:.3f}")
    print(
        f"report (Table {DEMO_CELL[0]}, smoke scale, beside the paper's numbers): {summary['look_at']['report']}"
    )
    if spec.tracking.enabled:
        from walt_bench.tracking.mlflow import resolve_uri

        print(f"MLflow UI: mlflow ui --backend-store-uri {resolve_uri(spec.tracking)} --host 127.0.0.1")
    print(f"metrics: {metrics_file}; record of the run: {run_dir / 'demo.json'}")
    return summary


def write_demo_report(spec, record: dict, out: Path) -> Path:
    """The demo's row as a result file and the report of its table; returns the report's index."""
    from walt_bench.report.build import write_report
    from walt_bench.stages import write_cell_result

    table, variant = DEMO_CELL
    write_cell_result(spec, record, RESULTS / f"{table}-demo.json", table=table, variant=variant)
    write_report(RESULTS, out, [table])
    return out / "README.md"


def _demo(args: argparse.Namespace) -> int:
    args.spec = args.spec or str(default_spec_path())
    run_demo(spec_from_args(args))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the embedded default end to end on CPU (synthetic data -> tokenizer -> W.A.L.T -> samples -> metrics)",
        description=__doc__.split("\n\n", 1)[1],
    )
    add_spec_args(parser, required=False)
    parser.set_defaults(handler=_demo)
