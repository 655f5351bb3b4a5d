"""walt_bench.tracking: MLflow logging (rank 0 only), see ``tracking/mlflow.py``.

Attributes load lazily so that importing ``walt_bench.tracking.config`` does not import mlflow.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "start_tracking": "mlflow",
    "flatten_params": "mlflow",
    "ensure_experiment": "mlflow",
    "resolve_uri": "mlflow",
    "MlflowTracker": "mlflow",
    "NullTracker": "mlflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"walt_bench.tracking.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'walt_bench.tracking' has no attribute {name!r}")
