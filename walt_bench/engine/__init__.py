"""walt_bench.engine: the generic training loop shared by the tokenizer and diffusion trainers.

It never imports a model package: trainers hand it modules, loss functions and a loader factory
(see ``engine/loop.py`` for the API and examples). Attributes load lazily so that importing
``walt_bench.engine.config`` (done by ``spec.py`` at CLI start-up) does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "loop",
    "Part": "loop",
    "StepContext": "loop",
    "TrainResult": "loop",
    "NonFiniteLossError": "loop",
    "autocast_dtype": "loop",
    "EMA": "ema",
    "load_checkpoint": "checkpoint",
    "load_weights": "checkpoint",
    "checkpoint_spec": "checkpoint",
    "latest_checkpoint": "checkpoint",
    "DistInfo": "distributed",
    "init_distributed": "distributed",
    "shutdown_distributed": "distributed",
    "seed_everything": "distributed",
    "is_main_process": "distributed",
    "derive_seed": "distributed",
    "micro_batch_size": "distributed",
    "run_dir_for": "rundir",
    "read_metrics": "rundir",
    "lr_multiplier": "optim",
    "build_optimizer": "optim",
    "add_train_arguments": "args",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"walt_bench.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'walt_bench.engine' has no attribute {name!r}")
