"""``walt-bench pipeline``: the DVC pipeline's stages (``dvc.yaml``), one command per stage and cell.

``dvc.yaml`` is generated from the paper's tables (``walt_bench.report.paper.TABLES``: every row we can run,
its spec file and overrides) by ``walt-bench pipeline dvc-yaml``; a test keeps the committed file equal to it.
Each stage reads ``params.yaml`` (``scale``: smoke | small | paper; ``roots``: dataset folders used at small and
paper scale), runs one stage function of ``walt_bench/stages.py`` for one cell, and writes a small JSON record
under ``dvc/`` (the stage's identity and folder) that the next stage depends on. The heavy outputs (checkpoints,
caches, samples) live at their identities under ``run.out_dir`` (``runs/``), which DVC never deletes, so an
interrupted ``dvc repro`` resumes the trainers from their last checkpoint, and cells that share a stage identity
(e.g. every ablation's tokenizer) run it once. The eval stage writes the cell's result file
(``results/pipeline/<cell>.json``, read by ``walt-bench report``); ``report@<table>`` writes ``reports/<table>/``
and ``index`` the top ``reports/README.md``.

    walt-bench pipeline data                          # smoke: synthesize data/synthetic if missing
    walt-bench pipeline tokenizer --cell ucf101-c8    # tokenizer cells: one per tokenizer spec
    walt-bench pipeline encode --cell ucf101-c8
    walt-bench pipeline classifier                    # smoke: the synthetic protocol's feature network
    walt-bench pipeline train --cell 3c-p_sc-0.3      # variant cells: one per table row
    walt-bench pipeline sample --cell 3c-p_sc-0.3
    walt-bench pipeline eval --cell 3c-p_sc-0.3
    walt-bench pipeline index                         # reports/README.md over the per-table reports
    walt-bench pipeline dvc-yaml > dvc.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from walt_bench.errors import UserError

PARAMS = Path("params.yaml")
RECORDS = Path("dvc")
RESULTS = Path("results")
TOKENIZER_SPECS = {
    "ucf101-c8": "experiments/tokenizers/ucf101.yaml",
    "ucf101-c4": "experiments/tokenizers/ucf101-c4.yaml",
    "ucf101-c16": "experiments/tokenizers/ucf101-c16.yaml",
    "ucf101-c32": "experiments/tokenizers/ucf101-c32.yaml",
    "kinetics600": "experiments/tokenizers/kinetics600.yaml",
    "imagenet": "experiments/tokenizers/imagenet.yaml",
}
ROOT_FIELDS = {  # params.yaml roots -> spec overrides, per dataset (small and paper scale)
    "ucf101": {"data.root": "ucf101"},
    "kinetics600": {"data.root": "kinetics600", "data.annotations": "kinetics600_annotations"},
    "imagenet": {"data.root": "imagenet"},
}


@dataclass(frozen=True)
class Cell:
    """One table row we run: its key in dvc.yaml, table, variant, spec, overrides and tokenizer cell."""

    key: str
    table: str
    variant: str
    spec: str
    overrides: tuple[str, ...]
    tokenizer: str


def cell_key(table: str, variant: str) -> str:
    return f"{table}-" + re.sub(r"[^A-Za-z0-9._]+", "-", variant).strip("-")


def tokenizer_cell(spec_file: str, overrides: tuple[str, ...] = ()) -> str:
    """The tokenizer cell whose spec trains the tokenizer of ``spec_file`` (dataset and latent channels)."""
    from walt_bench.spec import load_spec

    spec = load_spec(spec_file, list(overrides))
    if spec.data.dataset == "ucf101":
        return f"ucf101-c{spec.tokenizer.latent_channels}"
    return spec.data.dataset


def cells() -> dict[str, Cell]:
    """Every runnable row of the paper's tables (Table 5, text-to-video, has none yet)."""
    from walt_bench.report.paper import TABLES

    out = {}
    for table in TABLES.values():
        for v in table.variants:
            if v.spec is None:
                continue
            key = cell_key(table.id, v.key)
            out[key] = Cell(
                key, table.id, v.key, v.spec, tuple(v.overrides), tokenizer_cell(v.spec, v.overrides)
            )
    return out


# -- params and specs ------------------------------------------------------------------------------
def read_params(path: Path = PARAMS) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(
            f"{path} not found: run `walt-bench pipeline` from the repository root (beside dvc.yaml)"
        )
    params = yaml.safe_load(path.read_text()) or {}
    if params.get("scale") not in ("smoke", "small", "paper"):
        raise UserError(f"{path}: scale: got {params.get('scale')!r} - choose smoke, small or paper")
    return params


def cell_spec(spec_file: str, overrides: tuple[str, ...], params: dict[str, Any]):
    """The spec of a cell at the params' scale; at small and paper scale the dataset roots come from params."""
    from walt_bench.spec import load_spec

    scale = params["scale"]
    spec = load_spec(spec_file, list(overrides), scale=scale)
    if scale == "smoke":
        return spec
    roots = params.get("roots") or {}
    extra = [
        f"{field}={roots[key]}" for field, key in ROOT_FIELDS[spec.data.dataset].items() if roots.get(key)
    ]
    return load_spec(spec_file, [*overrides, *extra], scale=scale)


def _write_record(stage: str, name: str, record: dict[str, Any]) -> Path:
    path = RECORDS / stage / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _cell(name: str) -> Cell:
    found = cells()
    if name not in found:
        raise UserError(f"--cell {name!r}: no such cell; cells: {', '.join(found)}")
    return found[name]


def _tokenizer_spec(name: str, params):
    if name not in TOKENIZER_SPECS:
        raise UserError(f"--cell {name!r}: no such tokenizer cell; cells: {', '.join(TOKENIZER_SPECS)}")
    return cell_spec(TOKENIZER_SPECS[name], (), params)


# -- the stages ------------------------------------------------------------------------------------
def run_stage(stage: str, name: str | None, params: dict[str, Any]) -> Path:
    """Run one pipeline stage for one cell; returns the record (or result) file it wrote."""
    from walt_bench import stages
    from walt_bench.identity import stage_identity

    scale = params["scale"]
    if stage == "data":
        if scale == "smoke":
            spec = cell_spec(TOKENIZER_SPECS["ucf101-c8"], (), params)
            return _write_record("data", "data", stages.ensure_data(spec, synthesize_missing=True))
        return _write_record("data", "data", {"roots": params.get("roots"), "scale": scale})
    if stage == "index":
        return write_index()
    if stage == "classifier":
        spec = cell_spec(TOKENIZER_SPECS["ucf101-c8"], (), params)
        return _write_record("classifier", "classifier", stages.classifier(spec))
    if stage in ("tokenizer", "encode"):
        spec = _tokenizer_spec(name, params)
        rec = stages.tokenizer(spec, progress=False) if stage == "tokenizer" else stages.latents(spec)
        rec["identity"] = stage_identity(spec.to_dict(), "tokenizer" if stage == "tokenizer" else "latents")
        return _write_record(stage, name, rec)
    cell = _cell(name)
    spec = cell_spec(cell.spec, cell.overrides, params)
    if stage == "train":
        rec = stages.diffusion(spec, progress=False)
        rec["identity"] = stage_identity(spec.to_dict(), "diffusion")
        _write_curve(cell, Path(rec["run_dir"]) / "metrics.jsonl")
        return _write_record("train", name, rec)
    if stage == "sample":
        return _write_record("sample", name, stages.samples(spec, progress=False))
    if stage == "eval":
        record = {"stages": {}}
        record["stages"]["tokenizer_eval"] = stages.tokenizer_eval(spec)
        samples = json.loads((RECORDS / "sample" / f"{name}.json").read_text())
        record["stages"]["samples"] = samples
        record["stages"]["metrics"] = stages.metrics(spec, samples["path"])
        train = json.loads((RECORDS / "train" / f"{name}.json").read_text())
        record["stages"]["diffusion"] = train
        path = RESULTS / "pipeline" / f"{cell.key}.json"
        return stages.write_cell_result(
            spec,
            record,
            path,
            table=cell.table,
            variant=cell.variant,
            spec_file=cell.spec,
            overrides=cell.overrides,
        )
    raise UserError(f"unknown pipeline stage {stage!r}")


def _write_curve(cell: Cell, metrics_jsonl: Path) -> None:
    """The training loss of a cell as a DVC plot file (``dvc/curves/<cell>.json``: [{step, loss}, ...])."""
    from walt_bench.engine.rundir import read_metrics

    rows = [{"step": r["step"], "loss": r["loss"]} for r in read_metrics(metrics_jsonl) if "loss" in r]
    path = RECORDS / "curves" / f"{cell.key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows) + "\n")


# -- dvc.yaml ----------------------------------------------------------------------------------------
BASE_SPEC = "experiments/base/default.yaml"
MAX_ROWS = 5  # rows of the largest table (3d): report stages depend on this many result files


def _spec_files(spec_file: str) -> dict[str, str]:
    """The files a cell's spec is read from, for its DVC params: the spec and its parent (a chain is at most
    spec -> tokenizer spec -> base/default.yaml; ``parent`` repeats the spec when it inherits the base directly;
    the base is a fixed params entry of every stage). Spec files are the tracked params, so
    `dvc exp run -S FILE:field=value` re-runs the stages that read it."""
    chain, path = [], Path(spec_file)
    while path is not None:
        chain.append(str(path))
        base = (yaml.safe_load(path.read_text()) or {}).get("base")
        path = Path(os.path.normpath(path.parent / base)) if base else None
    if chain[-1] != BASE_SPEC or len(chain) > 3:
        raise ValueError(f"{spec_file}: the pipeline expects spec -> [parent ->] {BASE_SPEC}, got {chain}")
    return {"spec": chain[0], "parent": chain[1] if len(chain) == 3 else chain[0]}


def dvc_yaml(only: list[str] | None = None) -> str:
    """The pipeline as DVC YAML (foreach over tokenizer cells and table cells); ``only``: a subset of cells."""
    all_cells = cells()
    if only:
        unknown = sorted(set(only) - set(all_cells))
        if unknown:
            raise UserError(f"--cells: unknown cell(s) {unknown}; `walt-bench pipeline cells` lists them")
        all_cells = {k: c for k, c in all_cells.items() if k in only}
    used = {c.tokenizer for c in all_cells.values()}
    tok_cells = {name: _spec_files(spec) for name, spec in TOKENIZER_SPECS.items() if name in used}
    var_cells = {
        c.key: {"table": c.table, "tokenizer": c.tokenizer, **_spec_files(c.spec)} for c in all_cells.values()
    }
    from walt_bench.report.paper import TABLES

    table_ids = [t for t in TABLES if not only or any(c.table == t for c in all_cells.values())]
    tables = {}
    for t in table_ids:
        files = [f"results/pipeline/{c.key}.json" for c in all_cells.values() if c.table == t] or [
            PARAMS.name
        ]
        tables[t] = {f"r{i}": files[min(i, len(files) - 1)] for i in range(MAX_ROWS)}
    params = [
        "scale",
        "roots",
        "overrides",
        {"${item.spec}": None},
        {"${item.parent}": None},
        {BASE_SPEC: None},
    ]
    scales = "experiments/scales"
    doc: dict[str, Any] = {
        "vars": [{"tokenizer_cells": tok_cells, "cells": var_cells, "tables": tables}],
        "stages": {
            "data": {
                "cmd": "walt-bench pipeline data",
                "params": ["scale", "roots", "overrides"],
                "outs": [{"dvc/data/data.json": {"cache": False}}],
            },
            "classifier": {
                "cmd": "walt-bench pipeline classifier",
                "deps": ["dvc/data/data.json"],
                "params": ["scale", "overrides"],
                "outs": [{"dvc/classifier/classifier.json": {"cache": False}}],
            },
            "tokenizer": {
                "foreach": "${tokenizer_cells}",
                "do": {
                    "cmd": "walt-bench pipeline tokenizer --cell ${key}",
                    "deps": ["dvc/data/data.json", scales],
                    "params": params,
                    "outs": [{"dvc/tokenizer/${key}.json": {"cache": False}}],
                },
            },
            "encode": {
                "foreach": "${tokenizer_cells}",
                "do": {
                    "cmd": "walt-bench pipeline encode --cell ${key}",
                    "deps": ["dvc/tokenizer/${key}.json"],
                    "params": params,
                    "outs": [{"dvc/encode/${key}.json": {"cache": False}}],
                },
            },
            "train": {
                "foreach": "${cells}",
                "do": {
                    "cmd": "walt-bench pipeline train --cell ${key}",
                    "deps": ["dvc/encode/${item.tokenizer}.json", scales],
                    "params": params,
                    "outs": [
                        {"dvc/train/${key}.json": {"cache": False}},
                        {"dvc/curves/${key}.json": {"cache": False}},
                    ],
                },
            },
            "sample": {
                "foreach": "${cells}",
                "do": {
                    "cmd": "walt-bench pipeline sample --cell ${key}",
                    "deps": ["dvc/train/${key}.json"],
                    "params": params,
                    "outs": [{"dvc/sample/${key}.json": {"cache": False}}],
                },
            },
            "eval": {
                "foreach": "${cells}",
                "do": {
                    "cmd": "walt-bench pipeline eval --cell ${key}",
                    "deps": ["dvc/sample/${key}.json", "dvc/classifier/classifier.json"],
                    "params": params,
                    "metrics": [{"results/pipeline/${key}.json": {"cache": False}}],
                },
            },
            "report": {
                "foreach": "${tables}",
                "do": {
                    "cmd": "walt-bench report --results results --tables ${key} --out reports/${key}",
                    "deps": [f"${{item.r{i}}}" for i in range(MAX_ROWS)],
                    "outs": [{"reports/${key}": {"cache": False}}],
                },
            },
            "index": {
                "cmd": "walt-bench pipeline index",
                "deps": [f"reports/{t}" for t in table_ids],
                "outs": [{"reports/README.md": {"cache": False}}],
            },
        },
        "plots": [
            {"dvc/curves": {"x": "step", "y": "loss", "title": "training loss per cell"}},
        ],
    }

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    header = (
        "# Generated by `walt-bench pipeline dvc-yaml > dvc.yaml` from the paper's tables (walt_bench/report/paper.py);\n"
        "# do not edit by hand. Switches: params.yaml (scale, dataset roots, overrides). See the README's DVC section.\n"
    )
    return header + yaml.dump(doc, Dumper=NoAliases, sort_keys=False, width=120)


# -- command line ----------------------------------------------------------------------------------
STAGES = ("data", "classifier", "tokenizer", "encode", "train", "sample", "eval", "index")


def write_index(reports: Path = Path("reports")) -> Path:
    """``reports/README.md``: links to each table's report (``reports/<table>/README.md``) and what scale it ran at."""
    from walt_bench.report.paper import TABLES

    lines = [
        "# walt_bench reports",
        "",
        "Written by `dvc repro` (stage `index`; each table by `report@<table>`, i.e. `walt-bench report --tables "
        "<table>`). Our numbers beside the paper's, per table; each folder has the tables as Markdown, CSV and "
        "LaTeX, the Kendall τ of our ordering vs the paper's, and plots.",
        "",
        "| table | what | report |",
        "|---|---|---|",
    ]
    for tid, table in TABLES.items():
        folder = reports / tid
        link = f"[{tid}/]({tid}/README.md)" if (folder / "README.md").is_file() else "not run"
        lines.append(f"| {tid} | {table.title} | {link} |")
    params = yaml.safe_load(PARAMS.read_text()) if PARAMS.is_file() else {}
    if (params or {}).get("scale") == "smoke":
        lines += [
            "",
            "**Smoke scale**: synthetic data, tiny models, CPU minutes. The numbers are FVD-/IS-synthetic analogues, "
            "not comparable with the paper's in absolute terms; the orderings are reported as information.",
        ]
    path = reports / "README.md"
    reports.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _pipeline(args: argparse.Namespace) -> int:
    if args.stage == "dvc-yaml":
        print(dvc_yaml(args.cells.split(",") if args.cells else None), end="")
        return 0
    if args.stage == "cells":
        for c in cells().values():
            print(f"{c.key}\ttable {c.table}\t{c.variant}\t{c.spec} {' '.join(c.overrides)}\t{c.tokenizer}")
        return 0
    needs_cell = args.stage in ("tokenizer", "encode", "train", "sample", "eval")
    if needs_cell and not args.cell:
        raise UserError(
            f"walt-bench pipeline {args.stage} needs --cell NAME (`walt-bench pipeline cells` lists them)"
        )
    path = run_stage(args.stage, args.cell, read_params(Path(args.params)))
    print(f"pipeline {args.stage}{f' {args.cell}' if args.cell else ''}: wrote {path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="the DVC pipeline's stages (dvc.yaml calls these); `dvc-yaml` prints the pipeline",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=(*STAGES, "cells", "dvc-yaml"))
    parser.add_argument("--cell", default=None, help="the tokenizer cell or table cell (`pipeline cells`)")
    parser.add_argument("--params", default=str(PARAMS), help="DVC params file (scale, dataset roots)")
    parser.add_argument("--cells", default=None, help="dvc-yaml: only these comma-separated cells")
    parser.set_defaults(handler=_pipeline)
