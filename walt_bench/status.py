"""``walt-bench status --spec FILE [--scale S] [k=v ...]``: every stage's identity, folder and state.

States: ``done``; ``partial`` (a trainer stopped before its last step: ``--resume auto`` continues it);
``stale`` (it exists but was made from another upstream output than the one the spec now resolves to, e.g. a
latent cache of an earlier tokenizer checkpoint); ``missing``; ``not used`` (the latent cache when the trainer
encodes on the fly). The drivers (demo, sweep, DVC) skip stages that are ``done``.

    walt-bench status --spec experiments/smoke/default.yaml
    stage      identity      state    path
    tokenizer  3f1c0a9e7b21  done     runs/tokenizer-3f1c0a9e7b21
    ...
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from walt_bench.cliargs import add_spec_args, spec_from_args


@dataclass
class StageState:
    stage: str
    identity: str | None
    path: str
    state: str  # done | partial | stale | missing | not used
    detail: str = ""


def sample_count(spec) -> int:
    """Clips the eval protocol asks for: ``num_samples x repeats`` (the samples stage's default count)."""
    from walt_bench.evaluation.protocols import resolve

    settings = resolve(spec.eval)
    return settings.num_samples * settings.repeats


def _trainer_state(stage: str, identity: str, run_dir: Path, steps: int) -> StageState:
    from walt_bench.engine.checkpoint import checkpoint_step, latest_checkpoint

    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    last = latest_checkpoint(run_dir / "checkpoints")
    if last is not None and checkpoint_step(last) >= steps:
        return StageState(stage, identity, str(run_dir), "done", f"step {steps}")
    if last is not None:
        why = f"step {checkpoint_step(last)}/{steps}"
        if summary.get("status") not in (None, "finished", "stopped"):
            why += f", last exit: {summary['status']}"
        return StageState(stage, identity, str(run_dir), "partial", why)
    return StageState(stage, identity, str(run_dir), "missing")


def _sha(path: str | Path | None) -> str | None:
    from walt_bench.hashing import file_sha256

    return file_sha256(path) if path and Path(path).is_file() else None


def stage_states(spec, *, num: int | None = None, seed: int | None = None) -> list[StageState]:
    """The state of every stage of ``spec`` (see the module docstring); ``num``/``seed`` as ``sample`` gets them."""
    from walt_bench.engine.checkpoint import checkpoint_step, latest_checkpoint
    from walt_bench.identity import (
        metrics_identity,
        metrics_path,
        samples_dir,
        samples_identity,
        stage_dir,
        stage_identity,
        uses_cache,
    )

    d = spec.to_dict()
    states: list[StageState] = []
    tok_id = stage_identity(d, "tokenizer")
    tok_dir = stage_dir(spec, "tokenizer")
    if spec.tokenizer.checkpoint:
        found = Path(spec.tokenizer.checkpoint).is_file()
        tok = StageState(
            "tokenizer",
            tok_id,
            spec.tokenizer.checkpoint,
            "done" if found else "missing",
            "tokenizer.checkpoint",
        )
        tok_ckpt = spec.tokenizer.checkpoint if found else None
    else:
        tok = _trainer_state("tokenizer", tok_id, tok_dir, spec.tokenizer.train.steps)
        last = latest_checkpoint(tok_dir / "checkpoints")
        tok_ckpt = str(last) if last is not None else None
    states.append(tok)

    manifest_sha = None
    if uses_cache(d):
        lat_id, lat_dir = stage_identity(d, "latents"), stage_dir(spec, "latents")
        manifest_file = lat_dir / "manifest.json"
        if not manifest_file.is_file():
            states.append(StageState("latents", lat_id, str(lat_dir), "missing"))
        else:
            made_with = json.loads(manifest_file.read_text()).get("tokenizer") or {}
            manifest_sha = _sha(manifest_file)
            if not spec.tokenizer.checkpoint and made_with.get("identity") != tok_id:
                state = StageState("latents", lat_id, str(lat_dir), "stale", "made by another tokenizer")
            elif tok_ckpt and made_with.get("sha256") != _sha(tok_ckpt):
                state = StageState(
                    "latents", lat_id, str(lat_dir), "stale", f"made with {made_with.get('checkpoint')}"
                )
            else:
                state = StageState("latents", lat_id, str(lat_dir), "done", f"{made_with.get('checkpoint')}")
            states.append(state)
    else:
        states.append(StageState("latents", None, "-", "not used", "diffusion.latent_source=encode"))

    diff_id, diff_dir = stage_identity(d, "diffusion"), stage_dir(spec, "diffusion")
    diff = _trainer_state("diffusion", diff_id, diff_dir, spec.train.steps)
    summary_file = diff_dir / "summary.json"
    if diff.state == "done" and manifest_sha and summary_file.is_file():
        recorded = (json.loads(summary_file.read_text()).get("provenance") or {}).get("latents") or {}
        if recorded.get("manifest_sha256") not in (None, manifest_sha):
            diff = StageState("diffusion", diff_id, str(diff_dir), "stale", "the latent cache was re-encoded")
    states.append(diff)

    last = latest_checkpoint(diff_dir / "checkpoints")
    step = checkpoint_step(last) if last is not None else spec.train.steps
    num = num or sample_count(spec)
    seed = spec.run.seed if seed is None else seed
    extra = {"split": None} if spec.diffusion.sample_context_frames else {}
    s_id = samples_identity(diff_id, step, d, seed=seed, num=num, **extra)
    s_dir = samples_dir(spec, s_id)
    record_file = s_dir / "samples.json"
    if record_file.is_file() and (s_dir / "shards").is_dir():
        record = json.loads(record_file.read_text())
        stale = last is not None and record.get("checkpoint_sha256") != _sha(last)
        samples = StageState(
            "samples", s_id, str(s_dir), "stale" if stale else "done", f"{num} clips from step {step}"
        )
    else:
        samples = StageState("samples", s_id, str(s_dir), "missing", f"{num} clips from step {step}")
    states.append(samples)

    m_id = metrics_identity(s_id, d)
    m_path = metrics_path(s_dir, m_id)
    states.append(StageState("metrics", m_id, str(m_path), "done" if m_path.is_file() else "missing"))
    return states


def format_states(states: list[StageState]) -> str:
    rows = [("stage", "identity", "state", "path", "detail")]
    rows += [(s.stage, s.identity or "-", s.state, s.path, s.detail) for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + (f"  {r[4]}" if r[4] else "")
        for r in rows
    )


def _status(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    states = stage_states(spec, num=args.num, seed=args.seed)
    if args.json:
        print(json.dumps([asdict(s) for s in states], indent=2))
    else:
        print(format_states(states))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="every stage's identity, folder and state (done / partial / stale / missing) for a spec",
        description=__doc__.split("\n\n", 1)[1].split("\n\n")[0],
    )
    add_spec_args(parser)
    parser.add_argument("--num", type=int, default=None, help="sample count (default: the eval protocol's)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (default: run.seed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_status)
