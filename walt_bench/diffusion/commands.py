"""``walt-bench train`` (the diffusion model) and ``walt-bench sample`` (clips from a checkpoint).

Handlers import torch and the model code lazily so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json

from walt_bench.cliargs import add_spec_args, spec_from_args
from walt_bench.engine.args import add_train_arguments


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train the W.A.L.T diffusion model of a spec (through the engine)"
    )
    add_spec_args(train)
    add_train_arguments(train)
    train.set_defaults(handler=_train)

    sample = subparsers.add_parser(
        "sample", help="sample clips from a trained checkpoint (MP4, GIF grid, npz)"
    )
    add_spec_args(sample)
    sample.add_argument(
        "--ckpt",
        default=None,
        metavar="PATH",
        help="diffusion checkpoint (step_*.pt); default: the newest checkpoint of the spec's diffusion run "
        "(found by its identity, so sampling and eval overrides do not matter)",
    )
    sample.add_argument("--num", type=int, required=True, help="number of clips")
    sample.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: <run.out_dir>/samples-<identity>)"
    )
    sample.add_argument("--seed", type=int, default=None, help="sampling seed (default run.seed)")
    sample.add_argument("--batch-size", type=int, default=16, help="clips per sampling batch")
    sample.add_argument(
        "--sr",
        nargs=2,
        action="append",
        default=[],
        metavar=("SPEC", "CKPT"),
        help="a super-resolution stage (repeat for the cascade base -> SR1 -> SR2, §4.5)",
    )
    sample.add_argument(
        "--split", default=None, help="data split of the real context clips (frame prediction)"
    )
    sample.add_argument(
        "--max-files", type=int, default=64, help="write MP4 files for at most this many clips"
    )
    sample.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    sample.add_argument(
        "--allow-spec-mismatch",
        action="store_true",
        help="sample a checkpoint whose model/diffusion-training fields differ from the spec's (listed as a warning)",
    )
    sample.add_argument("--overwrite", action="store_true", help="sample again even if these samples exist")
    sample.set_defaults(handler=_sample)


def _train(args: argparse.Namespace) -> int:
    from walt_bench.diffusion.train import run_train

    spec = spec_from_args(args)
    result = run_train(
        spec,
        resume=args.resume,
        progress=False if args.no_progress else None,
        stop_at_step=args.stop_at_step,
        allow_spec_mismatch=args.allow_spec_mismatch,
    )
    from walt_bench.engine.distributed import is_main_process

    s = result.summary
    if result.run_dir is not None and is_main_process():
        loss = s.get("final_loss")
        loss_text = f"{loss:.4f}" if isinstance(loss, float) else "n/a"
        print(
            f"train {s['status']}: step {s['final_step']}/{s['steps']}, loss {loss_text}, "
            f"checkpoint {s.get('last_checkpoint')}, summary {result.run_dir / 'summary.json'}"
        )
    return 0


def _sample(args: argparse.Namespace) -> int:
    from walt_bench.diffusion.sample import run_sample
    from walt_bench.engine.distributed import is_main_process, shutdown_distributed
    from walt_bench.errors import UserError
    from walt_bench.spec import load_spec

    if args.num < 1 or args.batch_size < 1:
        raise UserError(f"sample: --num ({args.num}) and --batch-size ({args.batch_size}) must be positive")
    spec = spec_from_args(args)
    sr = [(load_spec(s), c) for s, c in args.sr]
    try:
        record = run_sample(
            spec,
            args.ckpt,
            args.num,
            args.out,
            allow_spec_mismatch=args.allow_spec_mismatch,
            overwrite=args.overwrite,
            seed=args.seed,
            batch_size=args.batch_size,
            sr=sr,
            split=args.split,
            progress=not args.no_progress,
            max_files=args.max_files,
        )
    finally:
        shutdown_distributed()
    if not is_main_process():
        return 0
    print(
        json.dumps({k: record.get(k) for k in ("identity", "num", "shape", "weights", "seed", "wall_time_s")})
    )
    out = record["path"]
    print(f"samples in {out}: shards/ (the evaluators' input), grid.gif and MP4s under {out}/videos/")
    return 0
