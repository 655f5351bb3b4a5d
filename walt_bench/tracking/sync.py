"""``walt-bench mlflow-sync [--dir .mlflow-buffer] [--uri URI]``: upload tracking calls a down server missed.

Every tracker journals its calls in ``tracking.buffer_dir`` before sending them (``tracking/mlflow.py``); a
journal whose run ended is deleted once fully sent. What is left belongs to runs that ended while the server was
unreachable (or are still running elsewhere: a journal another process is sending is skipped, ``flock``).
This command sends each one to the URI it was logged for (``--uri`` sends them elsewhere) and removes it.

    walt-bench mlflow-sync                      # after the server is back
    walt-bench mlflow-sync --dir runs/.mlflow-buffer --uri http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def sync_journals(directory: str | Path, uri: str | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """Send every journal under ``directory``; returns ``{"sent": [run ids], "failed": {key: error},
    "busy": [keys]}``. Journals of runs that ended and were fully sent are removed."""
    from mlflow.tracking import MlflowClient

    from walt_bench.tracking.mlflow import Journal, limit_http_retries, server_reachable

    limit_http_retries(timeout_s)
    report: dict[str, Any] = {"sent": [], "failed": {}, "busy": []}
    clients: dict[str, Any] = {}
    experiments: dict[str, dict[str, str]] = {}
    for path in sorted(Path(directory).glob("local-*.jsonl")):
        journal = Journal(path.parent, path.stem)
        target = uri or journal.state.get("uri")
        if uri:
            journal.state["uri"] = uri
        with journal.sending(block=False) as got:
            if not got:
                report["busy"].append(journal.key)
                continue
            try:
                if not server_reachable(target, timeout_s):
                    raise ConnectionError(f"{target}/health did not answer")
                client = clients.setdefault(target, MlflowClient(tracking_uri=target))
                journal.send(client, experiments.setdefault(target, {}))
            except Exception as exc:
                report["failed"][journal.key] = f"{type(exc).__name__}: {exc}"
                continue
        report["sent"].append(journal.state["run_id"])
        if journal.state.get("ended"):
            journal.remove()
    return report


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mlflow-sync", help="upload tracking calls journaled while the MLflow server was unreachable"
    )
    p.add_argument("--dir", default=".mlflow-buffer", help="the journal folder (tracking.buffer_dir)")
    p.add_argument("--uri", default=None, help="send to this tracking URI instead of the one each run used")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if not Path(args.dir).is_dir():
        print(f"nothing to sync: no folder {args.dir}")
        return 0
    report = sync_journals(args.dir, args.uri)
    print(f"sent {len(report['sent'])} runs; {len(report['busy'])} busy (being sent by a live run)")
    for key, error in report["failed"].items():
        print(f"failed {key}: {error}", file=sys.stderr)
    return 1 if report["failed"] else 0
