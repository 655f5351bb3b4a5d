"""``walt-bench eval``: metrics of samples, reference statistics, Fréchet distance of two files, and the
synthetic-data classifier.

    walt-bench eval --spec FILE --samples DIR [k=v ...]          same as `eval run`
    walt-bench eval run --spec FILE --samples DIR [--out F.json] [k=v ...]
    walt-bench eval stats --spec FILE --out F.npz [k=v ...]      real-data statistics (cached)
    walt-bench eval fd A.npz B.npz [--json]                      files like pytorch-fid's --save-stats
    walt-bench eval train-classifier --spec FILE [--out PATH] [k=v ...]
    walt-bench eval convert-c3d c3d_ucf101.flax --out C3D.pt     MAGVIT's C3D checkpoint -> a state dict

Sub-commands are parsed from the words after ``eval`` so that ``eval --spec F --samples D k=v`` works too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from walt_bench.cliargs import add_spec_args, spec_from_args

SUBCOMMANDS = ("run", "stats", "fd", "train-classifier", "convert-c3d")


def _sub_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"walt-bench eval {name}")
    if name == "fd":
        parser.description = "Fréchet distance between two statistics files (.npz with mu, sigma)."
        parser.add_argument("a", metavar="A.npz")
        parser.add_argument("b", metavar="B.npz")
        parser.add_argument("--json", action="store_true", help="print a JSON object instead of the number")
        return parser
    if name == "convert-c3d":
        parser.description = (
            "Convert MAGVIT's flax C3D checkpoint (c3d_ucf101.flax) to a state dict the UCF-101 IS loads "
            "(eval.c3d_weights). Reads arrays only; runs no code from the file."
        )
        parser.add_argument("source", metavar="C3D.flax")
        parser.add_argument("--out", required=True, metavar="FILE.pt")
        return parser
    add_spec_args(parser)
    if name == "run":
        parser.description = "Metrics of a samples dir under the spec's eval protocol; writes a metrics JSON."
        parser.add_argument(
            "--samples", required=True, metavar="DIR", help="folder with samples.npz (or the .npz)"
        )
        parser.add_argument(
            "--out", metavar="FILE", help="metrics JSON (default: <samples dir>/metrics-<identity>.json)"
        )
    elif name == "stats":
        parser.description = "Reference statistics of real data for the spec's protocol (pytorch-fid .npz)."
        parser.add_argument("--out", required=True, metavar="FILE.npz")
    else:
        parser.description = "Train the synthetic-data classifier behind FVD-synthetic / IS-synthetic."
        parser.add_argument(
            "--out", metavar="PATH", help="state dict (default: <run.out_dir>/synthetic_classifier.pt)"
        )
    return parser


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="metrics (FVD, FID, IS, rFVD), reference statistics, Fréchet distance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--spec", metavar="FILE", help="experiment spec (YAML), for the default `run`")
    parser.add_argument("--samples", metavar="DIR", help="samples folder, for the default `run`")
    parser.add_argument("--out", metavar="FILE", help="output file, for the default `run`")
    parser.add_argument(
        "words", nargs=argparse.REMAINDER, help=f"one of {', '.join(SUBCOMMANDS)} and its arguments"
    )
    parser.set_defaults(handler=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words and words[0] in SUBCOMMANDS:
        name, rest = words[0], words[1:]
    else:
        name, rest = "run", words
        for flag in ("spec", "samples", "out"):
            if getattr(args, flag):
                rest = [f"--{flag}", getattr(args, flag), *rest]
    sub = _sub_parser(name).parse_args(rest)
    sub.command_line = " ".join(["walt-bench", "eval", name, *rest])
    handlers = {"run": _run, "stats": _stats, "fd": _fd, "train-classifier": _train_classifier}
    return {**handlers, "convert-c3d": _convert_c3d}[name](sub)


def _device(spec):
    from walt_bench.engine.distributed import resolve_device

    return resolve_device(spec.run.device)


def _provenance(spec, command: str) -> dict:
    import numpy as np
    import torch

    from walt_bench import __version__

    return {
        "spec_hash": spec.hash,
        "command": command,
        "versions": {"walt_bench": __version__, "torch": torch.__version__, "numpy": np.__version__},
    }


def extractors_for(spec, settings, device):
    """The Fréchet extractor and the IS extractor (the same object when the protocol shares them)."""
    from walt_bench.evaluation.extractors import build_extractor, synthetic_classifier_path

    proto = settings.protocol
    fallback = synthetic_classifier_path(spec)
    fd = build_extractor(proto.extractor, spec.eval, device, fallback)
    if proto.is_extractor is None:
        return fd, None
    if proto.is_extractor == proto.extractor:
        return fd, fd
    return fd, build_extractor(proto.is_extractor, spec.eval, device, fallback)


def evaluate_samples(
    spec, samples: str | Path, out: str | Path | None = None, *, progress: bool = True, command: str = ""
) -> dict:
    """Score ``samples`` under ``spec.eval``; write the metrics JSON and log it to MLflow when enabled."""
    from walt_bench.evaluation.evaluate import check_sample_file, score_samples
    from walt_bench.evaluation.protocols import resolve

    settings = resolve(spec.eval, spec.data)
    check_sample_file(samples, settings)  # bad samples fail before any network loads
    fd, is_ = extractors_for(spec, settings, _device(spec))
    result = score_samples(spec, settings, fd, is_, samples, progress=progress)
    result.update(
        _provenance(spec, command or "walt_bench.evaluation.commands.evaluate_samples"), samples=str(samples)
    )
    out = Path(out) if out else default_metrics_path(spec, samples)
    result["identity"] = out.stem.removeprefix("metrics-") if out.stem.startswith("metrics-") else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    result["metrics_file"] = str(out)
    _log_mlflow(spec, result, out)
    return result


def default_metrics_path(spec, samples: str | Path) -> Path:
    """``<samples dir>/metrics-<identity>.json``: the metrics stage's identity is the samples' identity (from their
    ``samples.json``) + ``eval.*``; samples without a recorded identity get ``metrics.json``."""
    from walt_bench.identity import metrics_identity, metrics_path

    folder = Path(samples) if Path(samples).is_dir() else Path(samples).parent
    record = folder / "samples.json"
    samples_id = json.loads(record.read_text()).get("identity") if record.is_file() else None
    if samples_id is None:
        return folder / "metrics.json"
    return metrics_path(folder, metrics_identity(samples_id, spec.to_dict()))


def _log_mlflow(spec, result: dict, path: Path) -> None:
    if not spec.tracking.enabled:
        return
    try:
        from walt_bench.tracking.mlflow import start_tracking
    except ImportError:
        return
    tracker = start_tracking(
        spec.tracking,
        run_name=f"eval-{spec.run.name}-{spec.hash}",
        params=spec.to_dict(),
        tags={
            "spec_hash": spec.hash,
            "stage": "eval",
            "protocol": spec.eval.protocol,
            "identity": path.stem.removeprefix("metrics-"),
        },
    )
    metrics = {}
    for name in (result["metric"], result["protocol"]["is_metric"], "KID"):
        if name and result.get(name):
            metrics[name] = result[name]["mean"]
            metrics[f"{name}_std"] = result[name]["std"]
    tracker.log_metrics(metrics, step=0)
    tracker.log_artifact(str(path))
    tracker.end("FINISHED")


def _format(result: dict, name: str | None) -> str:
    if not name or name not in result:
        return ""
    m = result[name]
    return f"{name} {m['mean']:.3f} ± {m['std']:.3f}"


def _run(args) -> int:

    spec = spec_from_args(args)
    result = evaluate_samples(spec, args.samples, args.out, command=args.command_line)
    parts = [_format(result, result["metric"]), _format(result, result["protocol"]["is_metric"])]
    if result.get("KID"):
        parts.append(f"KID {result['KID']['mean']:.5f} ± {result['KID']['std']:.5f}")
    reference = result["reference"]
    print(
        f"{'  '.join(p for p in parts if p)}  ({result['repeats']} x {result['num_samples']} clips vs "
        f"{reference.get('num_samples', '?')} real per set, reference sets: {result['reference_sets']}; "
        f"{result['extractor']['kind']} {result['extractor']['weights_sha256'][:12]})"
    )
    if reference.get("note"):
        print(f"note: reference statistics: {reference['note']}")
    if result["below_protocol_count"]:
        print("note: fewer samples than the protocol asks for; not comparable with published numbers")
    print(f"wrote {result['metrics_file']}")
    return 0


def _stats(args) -> int:
    from walt_bench.evaluation.protocols import resolve
    from walt_bench.evaluation.reference import reference_statistics
    from walt_bench.evaluation.statsfile import write_stats

    spec = spec_from_args(args)
    settings = resolve(spec.eval, spec.data)
    fd, _ = extractors_for(spec, settings, _device(spec))
    stats = reference_statistics(spec, settings, fd, use_given=False, keep_features=spec.eval.kid)  # cached
    write_stats(args.out, stats)
    print(
        f"wrote {args.out}: {stats.sets} set(s) of {stats.meta['num_samples']} clips of "
        f"{spec.data.dataset}/{settings.reference_split}, {fd.kind} features d={stats.dim} "
        f"({'cached' if stats.info.get('cached') else 'computed'})"
    )
    return 0


def _fd(args) -> int:
    from walt_bench.evaluation.frechet import frechet_distance
    from walt_bench.evaluation.statsfile import StatsMismatchError, mismatches, read_stats

    a, b = read_stats(args.a), read_stats(args.b)
    if a.verified and b.verified:  # both say what made them: refuse to compare apples with oranges
        keys = ("protocol", "extractor", "weights_sha256", "covariance")
        problems = mismatches({k: a.meta.get(k) for k in keys}, {k: b.meta.get(k) for k in keys}, ("A", "B"))
        if problems:
            raise StatsMismatchError(
                f"A={args.a} and B={args.b} were made under different settings; their distance would mean "
                "nothing:\n  - " + "\n  - ".join(problems)
            )
    value = frechet_distance(*a.pooled, *b.pooled)
    print(json.dumps({"fd": value, "a": args.a, "b": args.b}) if args.json else f"{value:.6f}")
    return 0


def _convert_c3d(args) -> int:
    from walt_bench.evaluation.convert import convert_c3d
    from walt_bench.hashing import file_sha256

    out = convert_c3d(args.source, args.out)
    print(f"wrote {out} (sha256 {file_sha256(out)}); use it with eval.c3d_weights={out}")
    return 0


def _train_classifier(args) -> int:
    from walt_bench.evaluation.classifier import train_synthetic_classifier

    spec = spec_from_args(args)
    info = train_synthetic_classifier(spec, args.out, command=args.command_line)
    val = info["val_accuracy"]
    print(
        f"wrote {info['path']} (+ .json): train accuracy {info['train_accuracy']:.3f}, "
        f"held-out accuracy {val if val is None else f'{val:.3f}'} in {info['seconds']} s"
    )
    return 0
