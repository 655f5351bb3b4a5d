"""A tiny trainer for the SIGKILL tests (tests/test_reliability_kill.py); not a test module.

    python tests/reliability_kill_script.py OUT_DIR [--step-delay S] [--hang-in-save-at STEP]

Trains TinyNet for STEPS steps in ``OUT_DIR/tiny-<id>`` (``--resume auto``: a second start continues), then
writes the final parameters to ``OUT_DIR/final.pt``. ``--step-delay`` sleeps in every loss call, so that the
test can SIGKILL it at a chosen step; ``--hang-in-save-at STEP`` makes the checkpoint write of that step stop
after its temporary file is complete and before ``os.replace``, touch ``OUT_DIR/in-save`` and sleep (the test
SIGKILLs it there).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train  # noqa: E402

from walt_bench.engine.loop import Part  # noqa: E402

STEPS = 12
IDENTITY = "c0ffee000001"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--hang-in-save-at", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)

    if args.hang_in_save_at is not None:
        real_replace = os.replace

        def hanging_replace(src, dst, *a, **kw):
            if Path(dst).name == f"step_{args.hang_in_save_at:08d}.pt":
                (out / "in-save").touch()
                time.sleep(600)
            return real_replace(src, dst, *a, **kw)

        os.replace = hanging_replace

    def loss(batch, ctx):
        if args.step_delay:
            time.sleep(args.step_delay)
        return regression_loss(batch, ctx)

    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(out, steps=STEPS, ckpt_every=3, log_every=1)
    torch.manual_seed(0)
    result = tiny_train(
        [Part("net", TinyNet(dropout=0.3), loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=IDENTITY,
        progress=False,
    )
    state = {f"net.{k}": v for k, v in result.modules["net"].state_dict().items()}
    state.update({f"ema.{i}": t for i, t in enumerate(result.emas["net"].shadow)})
    torch.save(state, out / "final.pt")


if __name__ == "__main__":
    main()
