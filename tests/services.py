"""Real services for the tests that need them (not a test module): an ``mlflow server`` and a PostgreSQL server,
each on 127.0.0.1 and a free port, started in a temporary folder and stopped by the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin")) if Path("/usr/lib/postgresql").is_dir() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server --workers 1`` on a SQLite store in ``folder``; ``start()`` waits for ``/health`` (about 8 s
    on an idle 2-core machine, much more under load: the wait is up to two minutes)."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 150.0) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        mlflow = Path(sys.executable).parent / "mlflow"
        cmd = [
            str(mlflow) if mlflow.exists() else "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        log = open(self.folder / "server.log", "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(self.folder / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"mlflow server did not answer /health within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def api(self, path: str, body: dict | None = None, method: str | None = None) -> dict:
        """A call to the REST API (``path`` after ``/api/2.0/mlflow/``)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.uri}/api/2.0/mlflow/{path}",
            data=data,
            method=method or ("POST" if data else "GET"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def runs(self, experiment: str) -> list[dict]:
        exp = self.api(f"experiments/get-by-name?experiment_name={urllib.request.quote(experiment)}")
        out = self.api(
            "runs/search", {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 1000}
        )
        return out.get("runs", [])

    def metric_history(self, run_id: str, key: str) -> list[dict]:
        return self.api(f"metrics/get-history?run_id={run_id}&metric_key={urllib.request.quote(key)}")[
            "metrics"
        ]

    def artifacts(self, run_id: str, path: str = "") -> list[str]:
        q = f"artifacts/list?run_id={run_id}" + (f"&path={urllib.request.quote(path)}" if path else "")
        return [f["path"] for f in self.api(q).get("files", [])]


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


class PostgresServer:
    """A PostgreSQL cluster in ``folder`` on 127.0.0.1 (Debian's ``postgresql`` package; as root the server runs
    as the ``postgres`` user, which it requires). ``url`` is a SQLAlchemy URL for database ``postgres``."""

    def __init__(self):
        # its own folder under /tmp: the server user must reach it (pytest's tmp_path is private to root)
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="walt-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> str | None:
        """None when a server can be started here, else why not."""
        if not PG_BIN:
            return "PostgreSQL is not installed (/usr/lib/postgresql/*/bin; Debian package postgresql)"
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return "psycopg2 is not installed (pip install psycopg2-binary)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "runuser is missing"
        return None

    def _as_pg(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def start(self) -> PostgresServer:
        bin_dir = PG_BIN[-1]
        data = self.folder / "pgdata"
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")

        def run(args: list[str]) -> None:
            done = subprocess.run(self._as_pg(args), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{args[0]} failed: {done.stderr[-2000:]}")

        run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(self.folder / "log"),
                "-w",
                "start",
            ]
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            self._as_pg(
                [str(PG_BIN[-1] / "pg_ctl"), "-D", str(self.folder / "pgdata"), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
