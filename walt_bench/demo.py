"""``walt-bench demo``: the embedded default, end to end on CPU.

Runs the same CLI commands a user (or a DVC stage) would run, in order, on the smoke spec
(``experiments/smoke/default.yaml``): synthesize the dataset, check it, train the tokenizer, train the
synthetic-data classifier used by the FVD-/IS-synthetic analogues, evaluate the tokenizer, encode the
latent cache, train W.A.L.T, sample, evaluate. Finished work is reused on a re-run: the dataset is kept,
both trainers resume from their run directories (a finished run returns at once), and the cache is
rewritten. It ends with ``<run dir>/demo.json``: every stage's command, exit status and wall time, and
where to look (sample grid, metrics).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from walt_bench.errors import UserError

DEFAULT_SPEC = Path("experiments/smoke/default.yaml")


def default_spec_path() -> Path:
    """The smoke spec in the working directory, else the one in this checkout of the repository."""
    if DEFAULT_SPEC.is_file():
        return DEFAULT_SPEC
    return Path(__file__).resolve().parents[1] / DEFAULT_SPEC


def demo_stages(spec_file: str, overrides: list[str], spec, run_dir: Path) -> list[tuple[str, list[str]]]:
    """(stage name, argv) of every stage, in order; samples go to ``run_dir/samples``."""
    samples = run_dir / "samples"
    with_spec = ["--spec", spec_file]
    stages = []
    if not (Path(spec.data.root) / "ucfTrainTestlist").is_dir():
        stages.append(("synthesize data", ["data", "synth", "--out", spec.data.root]))
    stages += [
        ("check data", ["data", "check", *with_spec]),
        ("train tokenizer", ["tokenizer", "train", *with_spec]),
        ("train synthetic classifier", ["eval", "train-classifier", *with_spec]),
        ("evaluate tokenizer", ["tokenizer", "eval", *with_spec]),
        ("encode latent cache", ["tokenizer", "encode", *with_spec, "--overwrite"]),
        ("train W.A.L.T", ["train", *with_spec]),
        ("sample", ["sample", *with_spec, "--num", str(spec.eval.num_samples or 64), "--out", str(samples)]),
        ("evaluate samples", ["eval", "run", *with_spec, "--samples", str(samples)]),
    ]
    return [(name, [*argv, *overrides] if "--spec" in argv else argv) for name, argv in stages]


def run_demo(spec_file: str | None = None, overrides: list[str] | None = None) -> dict:
    from walt_bench.cli import main
    from walt_bench.engine.rundir import run_dir_for
    from walt_bench.spec import load_spec

    spec_file = str(spec_file or default_spec_path())
    overrides = list(overrides or [])
    spec = load_spec(spec_file, overrides)
    if spec.data.dataset != "ucf101":
        raise UserError(
            f"demo: data.dataset={spec.data.dataset!r}; the demo runs on the synthetic (ucf101-layout) data"
        )
    run_dir = run_dir_for(spec.run.out_dir, spec.run.name, spec.hash)
    stages = demo_stages(spec_file, overrides, spec, run_dir)
    record: dict = {"spec": spec_file, "overrides": overrides, "spec_hash": spec.hash, "stages": []}
    start = time.perf_counter()
    for i, (name, argv) in enumerate(stages, 1):
        print(f"\n=== [{i}/{len(stages)}] {name}: walt-bench {shlex.join(argv)}", flush=True)
        t0 = time.perf_counter()
        code = main(argv)
        record["stages"].append(
            {"stage": name, "argv": argv, "exit": code, "wall_s": round(time.perf_counter() - t0, 1)}
        )
        if code != 0:
            raise UserError(
                f"demo stopped at stage {i} ({name}) with exit status {code}; fix what it printed and run "
                "`walt-bench demo` again (finished stages are reused)"
            )
    record["wall_s"] = round(time.perf_counter() - start, 1)
    samples = run_dir / "samples"
    record["look_at"] = {
        "samples_grid": str(samples / "grid.gif"),
        "metrics": str(samples / "metrics.json"),
        "training_summary": str(run_dir / "summary.json"),
    }
    metrics_file = samples / "metrics.json"
    if metrics_file.is_file():
        result = json.loads(metrics_file.read_text())
        record["metrics"] = {k: v for k, v in result.items() if isinstance(v, dict) and "mean" in v}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"\ndemo finished in {record['wall_s']:.0f} s; look at {record['look_at']['samples_grid']}")
    print(f"metrics: {record['look_at']['metrics']}; record of the run: {run_dir / 'demo.json'}")
    return record


def _demo(args: argparse.Namespace) -> int:
    run_demo(args.spec, args.overrides)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the embedded default end to end on CPU (synthetic data -> tokenizer -> W.A.L.T -> samples -> metrics)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--spec", default=None, metavar="FILE", help=f"spec (default: {DEFAULT_SPEC})")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides for every stage")
    parser.set_defaults(handler=_demo)
