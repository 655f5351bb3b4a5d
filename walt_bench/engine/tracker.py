"""What the engine needs of an experiment tracker: an object with these methods, handed in by the trainer.

The engine never imports ``tracking/``; ``walt_bench.tracking.mlflow.MlflowTracker`` implements this protocol.
``start(run_id)`` is called once, after resume is resolved, with the run id a checkpoint recorded (or None):
a resumed run keeps logging into the same tracked run. :class:`NullTracker` does nothing (tracking off, or
ranks other than 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Tracker(Protocol):
    run_id: str | None

    def start(self, run_id: str | None = None) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_artifact(self, path: str, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracking switched off: every call is a no-op."""

    run_id: str | None = None

    def start(self, run_id: str | None = None) -> None:
        pass

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass
