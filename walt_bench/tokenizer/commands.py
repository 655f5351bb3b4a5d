"""``walt-bench tokenizer train|encode|eval --spec FILE [key=value ...]``.

    walt-bench tokenizer train  --spec experiments/smoke/default.yaml
    walt-bench tokenizer encode --spec experiments/smoke/default.yaml [--split train] [--out DIR]
    walt-bench tokenizer eval   --spec experiments/smoke/default.yaml [--clips N]

Heavy imports (torch, the data readers) happen inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json

from walt_bench.cliargs import add_spec_args, spec_from_args
from walt_bench.engine.args import add_train_arguments


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="tokenizer checkpoint (default: tokenizer.checkpoint, "
        "else the newest one of the tokenizer's run)",
    )
    add_spec_args(parser)


def _train(args: argparse.Namespace) -> int:
    from walt_bench.engine.distributed import is_main_process, shutdown_distributed
    from walt_bench.tokenizer.train import train_tokenizer

    spec = spec_from_args(args)
    try:
        result = train_tokenizer(
            spec,
            resume=args.resume,
            allow_spec_mismatch=args.allow_spec_mismatch,
            stop_at_step=args.stop_at_step,
            progress=False if args.no_progress else None,
        )
    finally:
        shutdown_distributed()
    if not is_main_process():
        return 0
    s = result.summary
    print(
        f"tokenizer trained to step {s['final_step']}: loss {s['final_loss']}, "
        f"val/psnr {s['final_metrics'].get('val/psnr')}; checkpoint {s['last_checkpoint']}"
    )
    print(f"summary: {result.run_dir / 'summary.json'}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from walt_bench.engine.distributed import is_main_process, shutdown_distributed
    from walt_bench.tokenizer.encode import encode_dataset

    spec = spec_from_args(args)
    try:
        m = encode_dataset(
            spec,
            checkpoint=args.checkpoint,
            split=args.split,
            out=args.out,
            batch_size=args.batch_size,
            limit=args.limit,
            overwrite=args.overwrite,
        )
    finally:
        shutdown_distributed()
    if not is_main_process():
        return 0
    t, c, h, w = m["latent_shape"]
    print(
        f"encoded {m['count']} clips of {m['split']} -> {m['path']} (latents {t}x{c}x{h}x{w}, "
        f"{len(m['shards'])} shard(s), {m['num_skipped']} unreadable skipped)"
    )
    mean = ", ".join(f"{v:.3f}" for v in m["stats"]["mean"])
    std = ", ".join(f"{v:.3f}" for v in m["stats"]["std"])
    print(f"per-channel mean [{mean}]\nper-channel std  [{std}]")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from walt_bench.tokenizer.evaluate import evaluate_tokenizer

    spec = spec_from_args(args)
    r = evaluate_tokenizer(
        spec,
        checkpoint=args.checkpoint,
        split=args.split,
        clips=args.clips,
        batch_size=args.batch_size,
        out_dir=args.out,
    )
    rfvd = r["rfvd"]
    rfvd_text = f"{rfvd['metric']} {rfvd['value']:.2f}" if rfvd else f"rFVD not computed ({r['rfvd_note']})"
    print(
        f"{r['num_clips']} clips of {r['split']}: PSNR {r['psnr']['mean']:.2f} dB, "
        f"SSIM {r['ssim']['mean']:.4f}, {rfvd_text}"
    )
    print(json.dumps({"path": r["path"], "reconstructions": r["reconstructions"]}))
    return 0


def register(subparsers) -> None:
    """Add ``tokenizer`` with ``train``, ``encode`` and ``eval``."""
    tok = subparsers.add_parser("tokenizer", help="train, apply and evaluate the causal 3D CNN tokenizer")
    sub = tok.add_subparsers(dest="tokenizer_command", required=True, metavar="{train,encode,eval}")

    train = sub.add_parser(
        "train", help="train the autoencoder + discriminator (engine loop; torchrun-ready)"
    )
    add_spec_args(train)
    add_train_arguments(train)
    train.set_defaults(handler=_train)

    encode = sub.add_parser("encode", help="write a sharded, memory-mapped latent cache + per-channel stats")
    encode.add_argument("--split", default=None, help="dataset split (default: data.split)")
    encode.add_argument(
        "--out", default=None, help="cache directory (default: tokenizer.cache_dir or a run path)"
    )
    encode.add_argument("--batch-size", type=int, default=8, help="clips per encoder call")
    encode.add_argument("--limit", type=int, default=None, help="encode only the first N clips")
    encode.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing cache (an up-to-date one is reused otherwise)",
    )
    _add_common(encode)
    encode.set_defaults(handler=_encode)

    ev = sub.add_parser("eval", help="PSNR, SSIM (and rFVD when available) on the eval split -> JSON")
    ev.add_argument("--split", default=None, help="dataset split (default: tokenizer.eval_split)")
    ev.add_argument(
        "--clips", type=int, default=None, help="clips to reconstruct (default: tokenizer.eval_clips)"
    )
    ev.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    ev.add_argument(
        "--out", default=None, help="folder for tokenizer_eval.json (default: the tokenizer run dir)"
    )
    _add_common(ev)
    ev.set_defaults(handler=_eval)
