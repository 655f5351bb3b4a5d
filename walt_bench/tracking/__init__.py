"""walt_bench.tracking: MLflow logging (rank 0 only), see ``tracking/mlflow.py``.

This file imports nothing, so importing ``walt_bench.tracking.config`` does not import mlflow.
"""
