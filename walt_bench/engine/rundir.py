"""The run directory ``<run.out_dir>/<stage>-<identity>/`` and the files in it.

spec.yaml        the resolved spec (written by rank 0 at every start)
checkpoints/     step_00001000.pt, ... (see engine/checkpoint.py)
metrics.jsonl    one JSON object per logged step: {"step": 10, "loss": ..., "lr": ..., ...}
summary.json     final step and loss, best metrics, checkpoint paths, wall time, throughput, spec hash
lock             host, PID and command of the trainer that holds the directory (:class:`RunLock`)

Nothing here is lost to a crash: ``spec.yaml`` and ``summary.json`` are replaced atomically; each metrics line is
one ``write`` on an ``O_APPEND`` descriptor, and a line torn by a full disk is cut off again at once (or, after a
SIGKILL or power cut, when the run resumes); the resume rewrite of ``metrics.jsonl`` goes to a temporary file
that replaces the old one only when complete. A full disk or an unwritable folder is a
:class:`~walt_bench.errors.StorageError` naming the path.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from walt_bench.errors import UserError, storage_error


def write_atomic(path: Path, data: bytes, what: str = "file") -> None:
    """Write ``data`` to ``path`` via a fsync-ed temporary file and ``os.replace``: ``path`` is either the old
    file or the new one. A full disk or an unwritable folder raises ``StorageError`` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        friendly = storage_error(exc, path, what)
        if friendly is not None:
            raise friendly from exc
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode(), path.name)


def prepare_run_dir(run_dir: Path, spec_dict: Mapping[str, Any]) -> None:
    """Create ``run_dir/checkpoints`` and write ``spec.yaml`` (rank 0 only, holding the lock)."""
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        friendly = storage_error(exc, run_dir, "the run directory")
        if friendly is not None:
            raise friendly from exc
        raise
    write_atomic(
        run_dir / "spec.yaml", yaml.safe_dump(dict(spec_dict), sort_keys=False).encode(), "spec.yaml"
    )


# -- the lock ------------------------------------------------------------------------------------
class RunDirLockedError(UserError):
    """Another live trainer holds this run directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run directory, held by its trainer for the whole run.

    ``<run_dir>/lock`` holds ``{"host", "pid", "started", "command"}`` of the holder, and the holder keeps an
    ``flock`` on it, which the kernel drops when the process dies (even by SIGKILL). A second trainer on the same
    directory gets :class:`RunDirLockedError` naming the holder. A lock file whose process is gone (no flock held)
    is stale: it is taken over with a message. Released: the file is emptied (not deleted, so that two waiting
    processes can never lock two different files).

        lock = RunLock(run_dir).acquire()     # RunDirLockedError if held
        ...
        lock.release()
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "lock"
        self._fd: int | None = None
        self.took_over: dict | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unlocked
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            friendly = storage_error(exc, self.path, "the run directory's lock file")
            if friendly is not None:
                raise friendly from exc
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read(fd)
            os.close(fd)
            raise RunDirLockedError(
                f"run directory {self.path.parent} is in use by another trainer ({_describe(holder)}; lock file "
                f"{self.path}). Wait for it to finish or stop it; two trainers on one directory would overwrite "
                "each other's checkpoints and metrics. To train a different run, change the spec or run.out_dir."
            ) from None
        previous = self._read(fd)
        if previous:
            self.took_over = previous
            alive = previous.get("host") == socket.gethostname() and _pid_alive(int(previous.get("pid", -1)))
            msg = (
                f"taking over the stale lock of run directory {self.path.parent} from {_describe(previous)}: "
                + (
                    "that PID is alive but holds no lock (a reused PID)."
                    if alive
                    else "that process is gone (it was killed or crashed)."
                )
            )
            print(f"warning: {msg}", file=sys.stderr, flush=True)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)[:500],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            return json.loads(text) if text else {}
        except (OSError, ValueError):
            return {"unparsable": True}

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(holder: Mapping[str, Any]) -> str:
    if not holder or holder.get("unparsable"):
        return "a process that left no readable host/PID"
    return f"PID {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}" + (
        f", command `{holder['command']}`" if holder.get("command") else ""
    )


# -- metrics.jsonl -------------------------------------------------------------------------------
class MetricsLog:
    """Append-only ``metrics.jsonl``, one complete JSON line per record.

    On resume from step ``k``, lines for steps after ``k`` (logged after that checkpoint by the interrupted run)
    are dropped so that the file has each step once; a torn or unparsable line (a crash or full disk mid-append)
    is dropped with a warning instead of breaking every later resume. The rewrite is atomic. ``resume_step=None``
    (a fresh start) keeps no earlier line (``--resume never`` has moved the earlier file aside first)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = Path(path)
        self._repair(0 if resume_step is None else resume_step)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            friendly = storage_error(exc, self.path, "the metrics log")
            if friendly is not None:
                raise friendly from exc
            raise

    def _repair(self, keep_upto: int) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        kept, dropped, torn = [], 0, []
        lines = raw.split(b"\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                torn.append(n)
                continue
            if step <= keep_upto:
                kept.append(line)
            else:
                dropped += 1
        if torn:
            warnings.warn(
                f"{self.path}: dropped {len(torn)} torn or unparsable line(s) (line {', '.join(map(str, torn[:5]))}"
                f"{' ...' if len(torn) > 5 else ''}), left by a crash or a full disk mid-write",
                RuntimeWarning,
                stacklevel=3,
            )
        data = b"".join(line + b"\n" for line in kept)
        if data != raw:
            write_atomic(self.path, data, "the metrics log")

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one line; a failed write (full disk) cuts the partial line off again and raises
        ``StorageError`` naming the file."""
        data = (json.dumps(dict(record), default=float) + "\n").encode()
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            friendly = storage_error(exc, self.path, "the metrics log")
            if friendly is not None:
                raise friendly from exc
            raise

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def versions() -> dict[str, str]:
    import torch

    import walt_bench

    return {
        "walt_bench": walt_bench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
