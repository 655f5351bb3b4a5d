"""MLflow logging from rank 0 that never stops or slows training: journal first, send in the background.

The store is ``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the
working directory (MLflow 3 no longer accepts the ``./mlruns`` file store). The experiment is created
before any run starts (two processes creating it at once race and one run lands in "Default").

    tracker = make_tracker(cfg.tracking, run_name="smoke-diffusion", params=spec.to_dict(),
                           tags={"stage": "diffusion", "identity": "3f1c0a9e7b21"})
    tracker.start(run_id=None)        # the engine does this, with the run id a checkpoint recorded
    tracker.log_metrics({"loss": 0.12, "lr": 5e-4}, step=10)
    tracker.log_artifact("runs/diffusion-3f1c0a9e7b21/summary.json")
    tracker.end("FINISHED")

How a tracking outage is handled: every call appends one JSON line to the run's journal
(``tracking.buffer_dir/<key>.jsonl``, a local file: microseconds) and a background thread sends what the
server has not received yet. A request gets ``tracking.timeout_s`` and is sent once (MLflow's default is seven
retries with exponential backoff, minutes per call); when the server does not answer, the tracker warns once,
keeps journaling and tries again every ``tracking.retry_s``. ``end()`` makes one last attempt (bounded) and
leaves what is still unsent in the journal: the next tracker that reaches the server, or
``walt-bench mlflow-sync``, uploads it (``tracking/sync.py``). A run created while the server was down has the
local id ``local-<hex>`` until it is sent; its journal maps it to the real run id.

Runs opened inside :func:`run_context` get its tags and ``mlflow.parentRunId`` (how a sweep nests the stage
runs of a trial under the trial's run). Every run is tagged with the git commit, samples system metrics
(``system/*``) every ``tracking.system_metrics_s`` and, on ``end()``, gets a loss-curve PNG of its ``*loss``
metrics. ``start_tracking(...)`` is ``make_tracker(...)`` already started. :class:`NullTracker`
(``engine/tracker.py``) has the same methods and does nothing (tracking disabled, or ranks other than 0).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import math
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from walt_bench.engine.tracker import NullTracker
from walt_bench.tracking.config import TrackingConfig

DEFAULT_URI = "sqlite:///mlflow.db"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length
MAX_BATCH = 100  # params per log_batch call (MLflow limit)
MAX_METRICS = 1000  # metrics per log_batch call (MLflow limit)
PARENT_TAG = "mlflow.parentRunId"
# Errors a retry cannot fix: the op is dropped with a warning instead of blocking the journal.
PERMANENT_ERRORS = ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "INVALID_STATE")

_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "walt_bench_tracking", default=None
)


def resolve_uri(cfg: TrackingConfig | None = None) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    if cfg is not None and cfg.uri:
        return cfg.uri
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def flatten_params(d: Mapping[str, Any], prefix: str = "", max_len: int = MAX_PARAM_VALUE) -> dict[str, str]:
    """``{"train": {"lr": 5e-4}}`` -> ``{"train.lr": "0.0005"}``; values longer than ``max_len`` are cut
    with a trailing ``...`` so MLflow accepts them."""
    out: dict[str, str] = {}
    for key, value in d.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        path = re.sub(r"[^\w\-. :/]", "_", path)  # the characters MLflow accepts in a key
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, path, max_len))
        else:
            text = str(value)
            out[path] = text if len(text) <= max_len else text[: max_len - 3] + "..."
    return out


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file (``<db dir>/mlruns``), not in whatever
    directory the process happens to run in; other stores keep MLflow's default (None)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix) :]).expanduser().resolve().parent / "mlruns").as_uri()


def git_commit() -> str:
    """The commit of the walt_bench checkout (``unknown`` outside a git checkout); read from ``.git`` files,
    no subprocess."""
    root = Path(__file__).resolve().parents[2] / ".git"
    try:
        if root.is_file():  # a worktree: "gitdir: /path/.git/worktrees/name"
            root = Path(root.read_text().split(":", 1)[1].strip())
        head = (root / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(" ", 1)[1]
        common = Path((root / "commondir").read_text().strip()) if (root / "commondir").is_file() else None
        for base in (root, (root / common) if common else None):
            if base is not None and (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs" if base is not None else None
            if packed is not None and packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except (OSError, IndexError):
        pass
    return "unknown"


@contextlib.contextmanager
def run_context(*, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Runs created inside get ``tags`` (under their own) and, with ``parent_run_id``, nest under that run."""
    current = _CONTEXT.get() or {}
    new = {
        "tags": {**current.get("tags", {}), **{k: str(v) for k, v in (tags or {}).items()}},
        "parent_run_id": parent_run_id or current.get("parent_run_id"),
    }
    token = _CONTEXT.set(new)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


_OWN_ENV: set[str] = set()


def limit_http_retries(timeout_s: float) -> None:
    """Send each MLflow HTTP request once with ``timeout_s`` (unless the user set MLflow's own variables):
    MLflow's defaults retry for minutes, and the journal retries anyway."""
    values = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(math.ceil(timeout_s)))),
    }
    for name, value in values.items():
        if name not in os.environ or name in _OWN_ENV:
            os.environ[name] = value
            _OWN_ENV.add(name)


def server_reachable(uri: str, timeout_s: float) -> bool:
    """For an HTTP store, whether ``/health`` answers within ``timeout_s``; other stores: True."""
    if not uri.startswith(("http://", "https://")):
        return True
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
            return r.status == 200
    except Exception:
        return False


def ensure_experiment(uri: str, name: str) -> str:
    """Id of experiment ``name`` in store ``uri``, creating it if needed (call before workers start)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except MlflowException:  # created concurrently by another process
        return client.get_experiment_by_name(name).experiment_id


# -- the journal -----------------------------------------------------------------------------------------
class Journal:
    """One run's tracking calls as JSON lines (``<key>.jsonl``) and how far they were sent (``<key>.state.json``:
    ``uri``, ``run_id`` once created, ``sent`` byte offset). Sending holds an exclusive ``flock`` on
    ``<key>.lock``, so a live tracker and ``walt-bench mlflow-sync`` never send the same line twice."""

    def __init__(self, directory: str | Path, key: str, uri: str | None = None):
        self.dir = Path(directory)
        self.key = key
        self.path = self.dir / f"{key}.jsonl"
        self.state_path = self.dir / f"{key}.state.json"
        self._append_lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        if uri is not None:
            self.state.setdefault("uri", uri)
        self.state.setdefault("sent", 0)
        self.state.setdefault("run_id", None)
        self._save_state()

    def append(self, op: dict[str, Any]) -> None:
        line = json.dumps(op, default=str) + "\n"
        with self._append_lock, open(self.path, "a") as f:
            f.write(line)

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_path)

    def pending(self) -> list[tuple[int, dict[str, Any]]]:
        """``(end offset, op)`` of every op not yet sent (only complete lines)."""
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.state["sent"])
            data = f.read()
        out, offset = [], self.state["sent"]
        for raw in data.split(b"\n")[:-1]:
            offset += len(raw) + 1
            out.append((offset, json.loads(raw)))
        return out

    def unsent(self) -> int:
        return len(self.pending())

    def ended(self) -> bool:
        return any(op["op"] == "end" for _, op in self.pending()) or bool(self.state.get("ended"))

    @contextlib.contextmanager
    def sending(self, block: bool = True) -> Iterator[bool]:
        with open(self.dir / f"{self.key}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                # another process may have sent lines since we read the state
                if self.state_path.is_file():
                    self.state.update(json.loads(self.state_path.read_text()))
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def send(self, client, experiment_ids: dict[str, str]) -> None:
        """Send every pending op through ``client`` (raises on the first failure; what was sent stays sent)."""
        ops = self.pending()
        i = 0
        while i < len(ops):
            offset, op = ops[i]
            if op["op"] == "metrics":  # merge consecutive metric lines into one request
                metrics, j = [], i
                while j < len(ops) and ops[j][1]["op"] == "metrics" and len(metrics) < MAX_METRICS:
                    metrics.extend(ops[j][1]["metrics"])
                    j += 1
                self._send_metrics(client, metrics)
                offset, i = ops[j - 1][0], j
            else:
                self._apply_or_drop(client, op, experiment_ids)
                i += 1
            self.state["sent"] = offset
            self._save_state()

    def _apply_or_drop(self, client, op: dict[str, Any], experiment_ids: dict[str, str]) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._apply(client, op, experiment_ids)
        except MlflowException as exc:
            if exc.error_code not in PERMANENT_ERRORS or op["op"] == "start":
                raise
            warnings.warn(f"MLflow rejected {op['op']} of run {self.state['run_id']}: {exc}", stacklevel=2)

    def _send_metrics(self, client, metrics: list[list[Any]]) -> None:
        from mlflow.entities import Metric

        items = [Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in metrics]
        for i in range(0, len(items), MAX_METRICS):
            client.log_batch(self.state["run_id"], metrics=items[i : i + MAX_METRICS])

    def _apply(self, client, op: dict[str, Any], experiment_ids: dict[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        kind, run_id = op["op"], self.state["run_id"]
        if kind == "start":
            name = op["experiment"]
            if name not in experiment_ids:
                experiment_ids[name] = _experiment_id(client, name, self.state["uri"])
            if run_id is None and op.get("resume"):
                try:
                    if client.get_run(op["resume"]).info.experiment_id == experiment_ids[name]:
                        run_id = op["resume"]
                except MlflowException:  # another store than the one the checkpoint was logged to
                    run_id = None
            if run_id is None:
                run = client.create_run(
                    experiment_ids[name], run_name=op["run_name"], tags=op["tags"], start_time=op["time"]
                )
                self.state["run_id"] = run.info.run_id
            else:
                self.state["run_id"] = run_id
                client.update_run(run_id, status="RUNNING")
        elif kind == "params":
            existing = client.get_run(run_id).data.params
            items = [Param(k, v) for k, v in op["params"].items() if k not in existing]
            for i in range(0, len(items), MAX_BATCH):
                client.log_batch(run_id, params=items[i : i + MAX_BATCH])
        elif kind == "tags":
            for k, v in op["tags"].items():
                client.set_tag(run_id, k, v)
        elif kind == "artifact":
            if Path(op["path"]).exists():
                if Path(op["path"]).is_dir():
                    client.log_artifacts(run_id, op["path"], op.get("artifact_path"))
                else:
                    client.log_artifact(run_id, op["path"], op.get("artifact_path"))
        elif kind == "end":
            client.set_terminated(run_id, status=op["status"], end_time=op["time"])
            self.state["ended"] = True

    def remove(self) -> None:
        for p in (
            self.path,
            self.state_path,
            self.dir / f"{self.key}.lock",
            self.dir / self.key / "loss.png",
        ):
            p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (self.dir / self.key).rmdir()


def _experiment_id(client, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except MlflowException:
        return client.get_experiment_by_name(name).experiment_id


# -- the tracker -----------------------------------------------------------------------------------------
class MlflowTracker(NullTracker):
    """One MLflow run: calls are journaled (see the module docstring) and sent by a background thread."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        buffer_dir: str | Path = ".mlflow-buffer",
        timeout_s: float = 5.0,
        retry_s: float = 30.0,
        system_metrics_s: float = 0.0,
    ):
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = {k: str(v) for k, v in (tags or {}).items()}
        self.params = dict(params or {})
        self.buffer_dir = Path(buffer_dir)
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.system_metrics_s = system_metrics_s
        self.run_id: str | None = None
        self.journal: Journal | None = None
        self._wake = threading.Event()
        self._stop_sender = threading.Event()
        self._stop_sampler = threading.Event()
        self._online: bool = False
        self._mlflow_client = None
        self._experiments: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._sampler: threading.Thread | None = None
        self._next_try = 0.0
        self._warned = False
        self._losses: dict[str, list[tuple[int, float]]] = {}

    # The engine's calls: journal, wake the sender. ---------------------------------------------------------
    def start(self, run_id: str | None = None) -> None:
        """Continue run ``run_id`` when it exists in this store (a resumed trainer; a ``local-`` id continues that
        journal), else create a run. Waits at most about ``timeout_s`` for the server to create it."""
        limit_http_retries(self.timeout_s)
        key = run_id if run_id and run_id.startswith("local-") else f"local-{uuid.uuid4().hex[:16]}"
        self.journal = Journal(self.buffer_dir, key, self.uri)
        resume = run_id if run_id and not run_id.startswith("local-") else None
        self.journal.append(
            {
                "op": "start",
                "experiment": self.experiment,
                "run_name": self.run_name,
                "tags": self.tags,
                "resume": resume,
                "time": _now_ms(),
            }
        )
        if self.params:
            self.log_params(flatten_params(self.params))
        self._flush()  # synchronous once, so a reachable server gives the real run id now
        self.run_id = self.journal.state["run_id"] or key
        self._thread = threading.Thread(target=self._sender, name=f"mlflow-{key}", daemon=True)
        self._thread.start()
        if self.system_metrics_s > 0:
            self._sampler = threading.Thread(target=self._sample_system, name="mlflow-system", daemon=True)
            self._sampler.start()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.journal.append({"op": "params", "params": {k: str(v) for k, v in params.items()}})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = _now_ms()
        items = []
        for k, v in metrics.items():
            if v is None or not math.isfinite(float(v)):
                continue
            items.append([k, float(v), now, int(step)])
            if k == "loss" or k.endswith("/loss"):
                self._losses.setdefault(k, []).append((int(step), float(v)))
        if items:
            self.journal.append({"op": "metrics", "metrics": items})
            self._wake.set()

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.journal.append(
            {"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path}
        )
        self._wake.set()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.journal.append({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def end(self, status: str = "FINISHED") -> None:
        """Log the loss curve, mark the run ended, make a last bounded attempt to send everything."""
        if self.journal is None:
            return
        self._stop_sampler.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        curve = self._loss_curve()
        if curve is not None:
            self.log_artifact(str(curve))
        self.journal.append({"op": "end", "status": status, "time": _now_ms()})
        self._stop_sender.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(30.0, 6 * self.timeout_s))
        left = self.journal.unsent()
        if left:
            warnings.warn(
                f"MLflow: {left} tracking calls of run {self.run_name!r} not sent to {self.uri}; they are kept in "
                f"{self.journal.path} (`walt-bench mlflow-sync` uploads them)",
                stacklevel=2,
            )
        else:
            self.journal.remove()
        self.run_id = self.journal.state["run_id"] or self.run_id

    # The sender thread. ----------------------------------------------------------------------------------
    def _sender(self) -> None:
        while not self._stop_sender.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if time.monotonic() >= self._next_try:
                self._flush()
        self._flush()  # end() was called: one last attempt, whatever the backoff

    def _flush(self) -> None:
        with self.journal.sending(block=True):
            if self.journal.unsent() == 0:
                return
            try:
                limit_http_retries(self.timeout_s)
                if not self._online and not server_reachable(self.uri, self.timeout_s):
                    raise ConnectionError(f"{self.uri}/health did not answer within {self.timeout_s:g} s")
                self._online = True
                self.journal.send(self._client(), self._experiments)
                if self.run_id and self.run_id.startswith("local-") and self.journal.state["run_id"]:
                    self.run_id = self.journal.state["run_id"]
            except Exception as exc:  # any failure: keep the journal, warn once, retry later
                self._online = False
                self._next_try = time.monotonic() + self.retry_s
                if not self._warned:
                    self._warned = True
                    warnings.warn(
                        f"MLflow at {self.uri} unreachable ({type(exc).__name__}: {str(exc)[:200]}); run "
                        f"{self.run_name!r} keeps logging to {self.journal.path} and retries every "
                        f"{self.retry_s:g} s (`walt-bench mlflow-sync` uploads what is left)",
                        stacklevel=2,
                    )

    def _client(self):
        from mlflow.tracking import MlflowClient

        if self._mlflow_client is None:
            self._mlflow_client = MlflowClient(tracking_uri=self.uri)
        return self._mlflow_client

    # System metrics and the loss curve. --------------------------------------------------------------------
    def _sample_system(self) -> None:
        step = 0
        while not self._stop_sampler.wait(timeout=0 if step == 0 else self.system_metrics_s):
            metrics = system_metrics()
            if metrics:
                self.log_metrics(metrics, step)
            step += 1

    def _loss_curve(self) -> Path | None:
        if not self._losses or not any(len(v) > 1 for v in self._losses.values()):
            return None
        path = self.buffer_dir / self.journal.key / "loss.png"
        try:
            plot_curves(self._losses, path, title=self.run_name)
        except Exception as exc:  # a plot never stops a run
            warnings.warn(f"loss curve not drawn: {exc}", stacklevel=2)
            return None
        return path


def _now_ms() -> int:
    return int(time.time() * 1000)


def system_metrics() -> dict[str, float]:
    """CPU and RAM (psutil) and GPU memory (torch, when CUDA is initialised), named like MLflow's own."""
    out: dict[str, float] = {}
    try:
        import psutil

        out["system/cpu_utilization_percentage"] = psutil.cpu_percent(interval=None)
        mem = psutil.virtual_memory()
        out["system/system_memory_usage_megabytes"] = (mem.total - mem.available) / 2**20
        out["system/system_memory_usage_percentage"] = mem.percent
        out["system/process_rss_megabytes"] = psutil.Process().memory_info().rss / 2**20
    except Exception:
        pass
    try:
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            for i in range(torch.cuda.device_count()):
                out[f"system/gpu_{i}_memory_usage_megabytes"] = torch.cuda.memory_allocated(i) / 2**20
                free, total = torch.cuda.mem_get_info(i)
                out[f"system/gpu_{i}_memory_usage_percentage"] = 100 * (1 - free / total)
    except Exception:
        pass
    return out


def plot_curves(curves: Mapping[str, list[tuple[int, float]]], path: str | Path, title: str = "") -> Path:
    """A PNG of each ``name -> [(step, value)]`` curve (log y when every value is positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    positive = True
    for name, points in sorted(curves.items()):
        steps, values = zip(*sorted(points))
        ax.plot(steps, values, label=name)
        positive = positive and min(values) > 0
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def make_tracker(
    cfg: TrackingConfig | None,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> NullTracker:
    """An unstarted :class:`MlflowTracker` (params logged flattened at start), or a :class:`NullTracker` when
    ``cfg.enabled`` or ``enabled`` is false (pass ``enabled=is_rank0``). Tags: the :func:`run_context`'s, the git
    commit, then ``tags``."""
    if cfg is None or not cfg.enabled or not enabled:
        return NullTracker()
    context = _CONTEXT.get() or {}
    all_tags = {"git_commit": git_commit(), **context.get("tags", {}), **dict(tags or {})}
    if context.get("parent_run_id"):
        all_tags[PARENT_TAG] = context["parent_run_id"]
    return MlflowTracker(
        resolve_uri(cfg),
        cfg.experiment,
        run_name,
        tags=all_tags,
        params=params,
        buffer_dir=cfg.buffer_dir,
        timeout_s=cfg.timeout_s,
        retry_s=cfg.retry_s,
        system_metrics_s=cfg.system_metrics_s,
    )


def stage_tracker(spec, stage: str, identity: str, enabled: bool = True) -> NullTracker:
    """The tracker of one stage's run of ``spec``: named ``<run.name>-<stage>``, params = the resolved spec,
    tagged with the stage, its identity, the scale and the spec hash."""
    tags = {"stage": stage, "identity": identity, "scale": spec.run.scale, "spec_hash": spec.hash}
    return make_tracker(spec.tracking, f"{spec.run.name}-{stage}", spec.to_dict(), tags, enabled)


def start_tracking(
    cfg: TrackingConfig | None,
    run_name: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> NullTracker:
    """:func:`make_tracker`, started as a new run."""
    tracker = make_tracker(cfg, run_name, params, tags, enabled)
    tracker.start()
    return tracker
