"""Golden loss curves (torchtitan's ``tests/assets/losses``): the smoke tokenizer and W.A.L.T-tiny, trained a few
steps on CPU with fixed seeds on the embedded synthetic dataset, must reproduce the committed losses, so an
unintended change to a model, an objective, the data path or the engine fails CI.

Regenerate after an intended change (and say why in the commit message)::

    .venv/bin/python tests/golden.py --write

which rewrites ``tests/assets/losses/{tokenizer,walt}.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets" / "losses"
SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "smoke" / "default.yaml"
STEPS = 6
OVERRIDES = [
    f"tokenizer.train.steps={STEPS}",
    "tokenizer.train.log_every=1",
    f"tokenizer.train.ckpt_every={STEPS}",
    f"train.steps={STEPS}",
    "train.log_every=1",
    f"train.ckpt_every={STEPS}",
    "tracking.enabled=false",
    "run.seed=0",
]


def golden_losses(workdir: Path) -> dict[str, list[float]]:
    """Train both stages ``STEPS`` steps in ``workdir`` (1 thread); their per-step losses."""
    import torch

    from walt_bench.data.synthetic import synthesize
    from walt_bench.engine.rundir import read_metrics
    from walt_bench.spec import load_spec
    from walt_bench.stages import diffusion, latents, tokenizer

    torch.set_num_threads(1)
    synthesize(workdir / "syn", seed=0)
    spec = load_spec(SMOKE, [*OVERRIDES, f"data.root={workdir / 'syn'}", f"run.out_dir={workdir / 'runs'}"])
    out = {}
    tok = tokenizer(spec, progress=False)
    latents(spec)
    walt = diffusion(spec, progress=False)
    for name, record in (("tokenizer", tok), ("walt", walt)):
        rows = read_metrics(Path(record["run_dir"]) / "metrics.jsonl")
        out[name] = [r["loss"] for r in rows if "loss" in r]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="rewrite the committed loss files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        losses = golden_losses(Path(tmp))
    for name, values in losses.items():
        text = json.dumps({"steps": STEPS, "overrides": OVERRIDES, "losses": values}, indent=2) + "\n"
        if args.write:
            ASSETS.mkdir(parents=True, exist_ok=True)
            (ASSETS / f"{name}.json").write_text(text)
        print(f"{name}: {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
