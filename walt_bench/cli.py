"""The ``walt-bench`` command line (also ``python -m walt_bench``).

Thin by design: parse, load the spec, call one stage function. Each package registers its own
commands (``<package>/commands.py``) and imports torch and friends only inside its handlers, so
``walt-bench --help`` and ``walt-bench spec validate`` stay fast.

Exit status: 0 success, 1 a check found problems (e.g. unreadable data files), 2 bad input
(spec, data, checkpoint, weights) or an unwritable output (full disk, read-only or forbidden folder) with a
message saying what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from walt_bench import __version__
from walt_bench.cliargs import add_spec_args, spec_from_args
from walt_bench.errors import UserError


def _spec_validate(args: argparse.Namespace) -> int:

    spec = spec_from_args(args)
    t, h, w = spec.latent_shape
    print(f"ok {spec.hash}  (latent {t}x{h}x{w}x{spec.tokenizer.latent_channels})")
    return 0


def _spec_show(args: argparse.Namespace) -> int:

    spec = spec_from_args(args)
    sys.stdout.write(f"# spec hash: {spec.hash}\n{spec.to_yaml()}")
    return 0


def _spec_fields(args: argparse.Namespace) -> int:
    from walt_bench.spec import spec_fields

    print("| field | default | description |\n|---|---|---|")
    for path, description, default in spec_fields():
        cell = description.replace("|", "\\|")
        print(f"| `{path}` | `{default!r}` | {cell} |")
    return 0


def _register_spec(subparsers) -> None:
    spec = subparsers.add_parser("spec", help="validate or show an experiment spec")
    sub = spec.add_subparsers(dest="spec_command", required=True, metavar="{validate,show,fields}")
    validate = sub.add_parser(
        "validate", help="exit 0 and print the spec hash, or exit 2 listing every bad field"
    )
    add_spec_args(validate, flag=False)
    validate.set_defaults(handler=_spec_validate)
    show = sub.add_parser("show", help="print the resolved spec as YAML")
    add_spec_args(show, flag=False)
    show.set_defaults(handler=_spec_show)
    fields = sub.add_parser("fields", help="every spec field with its default and meaning (Markdown)")
    fields.set_defaults(handler=_spec_fields)


def build_parser() -> argparse.ArgumentParser:
    from walt_bench import demo, pipeline, status
    from walt_bench.bench import commands as bench_commands
    from walt_bench.data import commands as data_commands
    from walt_bench.denoiser import commands as model_commands
    from walt_bench.diffusion import commands as diffusion_commands
    from walt_bench.evaluation import commands as eval_commands
    from walt_bench.report import commands as report_commands
    from walt_bench.sweeps import commands as sweep_commands
    from walt_bench.tokenizer import commands as tokenizer_commands
    from walt_bench.tracking import sync as tracking_sync

    parser = argparse.ArgumentParser(
        prog="walt-bench",
        description="W.A.L.T video diffusion: train, sample and evaluate from declarative specs.",
    )
    parser.add_argument("--version", action="version", version=f"walt-bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_spec(subparsers)
    for module in (
        data_commands,
        model_commands,
        tokenizer_commands,
        diffusion_commands,
        eval_commands,
        status,
        report_commands,
        pipeline,
        demo,
        sweep_commands,
        tracking_sync,
        bench_commands,
    ):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from walt_bench.bench.threads import configure_threads

    # torch's intra-op threads = the cores this process may use, unless OMP_NUM_THREADS is set (a shared
    # machine's default oversubscription made the pipeline 10-15x slower); before any handler imports torch
    configure_threads()
    parser = build_parser()
    # Overrides may also follow options (`train --spec F a=1 --no-progress b=2`): argparse leaves the
    # later ones unparsed; take them when they are key=value, else let argparse report the error.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.parse_args(argv)  # prints argparse's message and exits 2
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk or an unwritable path met outside the engine's own checks
        from walt_bench.errors import storage_error

        friendly = storage_error(exc, exc.filename or "(unknown path)", "output")
        if friendly is None:
            raise
        print(f"error: {friendly}", file=sys.stderr)
        return friendly.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `walt-bench spec fields | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
