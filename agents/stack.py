"""The running stack: embedded or configured services, prepared for the worker.

``Stack`` starts what is not configured (Tansu when KAFKA_BOOTSTRAP is unset,
PostgreSQL when DATABASE_URL is unset), applies migrations, creates topics and
records where everything is in ``<state_dir>/stack.json`` for ``sentinel status``
and ``sentinel replay``.

One ``sentinel up`` owns a state folder at a time (a lock on ``run.lock``, released by the
kernel however the process ends). ``run.json`` records the processes it started (broker,
worker) and the database folder, so the next start can stop what a killed run left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from infra.db import migrate, redact
from infra.embedded import EmbeddedBroker, EmbeddedPostgres, is_tansu_broker, process_alive, terminate
from infra.kafka import ensure_topics, topic_specs
from infra.settings import Settings


def status_file(settings: Settings) -> Path:
    return settings.state_dir / "stack.json"


def read_status(settings: Settings) -> dict | None:
    """The running stack's status, or None when no live ``sentinel up`` wrote one."""
    path = status_file(settings)
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not process_alive(status.get("pid")):
        return None
    return status


def resolve_services(settings: Settings) -> Settings:
    """Settings with KAFKA_BOOTSTRAP / DATABASE_URL filled from a running ``sentinel up`` when unset."""
    status = read_status(settings)
    if status is None:
        return settings
    update = {}
    if not settings.kafka_bootstrap:
        update["kafka_bootstrap"] = status["kafka_bootstrap"]
    if not settings.database_url:
        update["database_url"] = status["database_url_full"]
    return settings.model_copy(update=update)


class StackError(RuntimeError):
    """A start that cannot go on: ``str(exc)`` says what happened, ``hint`` what to do."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def is_worker(pid: int) -> bool:
    """True when ``pid`` runs ``python -m agents.cli worker`` (as Stack.start_worker starts it)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "agents.cli" in cmdline and "worker" in cmdline


def is_desk(pid: int) -> bool:
    """True when ``pid`` runs ``python -m agents.cli desk serve`` (as Stack.start_desk starts it)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "agents.cli" in cmdline and "desk" in cmdline and "serve" in cmdline


class Stack:
    def __init__(self, settings: Settings, say=print, lock_wait: float = 30.0):
        self.settings = settings
        self.say = say
        self.lock_wait = lock_wait  # how long to wait for a previous run that is still stopping
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.worker: subprocess.Popen | None = None
        self.desk: subprocess.Popen | None = None
        self.topics: list[str] = []
        self._lock: int | None = None
        self._run: dict = {}

    @property
    def run_file(self) -> Path:
        return self.settings.state_dir / "run.json"

    def start(self) -> "Stack":
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        self._acquire()
        self._reclaim()
        self._record(pid=os.getpid(), state="starting")
        update = {}
        if not s.kafka_bootstrap:
            self.broker = EmbeddedBroker(log_file=s.state_dir / "tansu.log")
            try:
                self.broker.start()
            except RuntimeError as exc:
                raise StackError(str(exc), f"read {s.state_dir / 'tansu.log'}, or set KAFKA_BOOTSTRAP to a "
                                           "running Kafka") from None
            self._record(broker_pid=self.broker.pid)
            update["kafka_bootstrap"] = self.broker.bootstrap
            self.say(f"embedded Kafka (Tansu, in memory) on {self.broker.bootstrap}")
        if not s.database_url:
            pgdata = s.state_dir / "pgdata"
            self._record(pgdata=str(pgdata))
            self.postgres = EmbeddedPostgres(pgdata)
            try:
                self.postgres.start()
            except RuntimeError as exc:
                self.postgres = None
                raise StackError(str(exc), "wait for it and run again; if it stays, stop the postgres processes "
                                           f"on {pgdata} (pg_ctl stop -D {pgdata})") from None
            if self.postgres.orphan_stopped:
                self.say(f"stopped the PostgreSQL (pid {self.postgres.orphan_stopped}) left by a killed run")
            update["database_url"] = self.postgres.url
            self.say(f"embedded PostgreSQL in {pgdata}")
        self.settings = s = s.model_copy(update=update)
        try:
            migrate(s.database_url)
        except Exception as exc:  # noqa: BLE001 - driver and alembic errors alike end the start with one line
            raise StackError(f"cannot migrate the database at {redact(s.database_url)}: {first_line(exc)}",
                             "check DATABASE_URL (or unset it to use the embedded PostgreSQL)") from None
        try:
            self.topics = ensure_topics(s.kafka_bootstrap, topic_specs(s.topic_partitions), timeout=15.0,
                                       replication=s.topic_replication)
        except Exception as exc:  # noqa: BLE001
            raise StackError(f"cannot create the topics on Kafka at {s.kafka_bootstrap}: {first_line(exc)}",
                             "check KAFKA_BOOTSTRAP (or unset it to use the embedded broker)") from None
        self._record(state="running")
        self.write_status()
        return self

    def _acquire(self) -> None:
        """Own the state folder; wait (bounded) for a previous run that is still stopping."""
        fd = os.open(self.settings.state_dir / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock = fd
                return
            except BlockingIOError:
                run = self._read_run()
                if run.get("state") != "stopping" or time.monotonic() > deadline:
                    os.close(fd)
                    what = "is still stopping" if run.get("state") == "stopping" else "is running"
                    raise StackError(f"another `sentinel up` (pid {run.get('pid', '?')}) {what} on "
                                     f"{self.settings.state_dir}",
                                     "stop it first (Ctrl-C), or give this one its own SENTINEL_STATE_DIR") from None
                time.sleep(0.5)

    def _read_run(self) -> dict:
        try:
            return json.loads(self.run_file.read_text())
        except (OSError, ValueError):
            return {}

    def _record(self, **fields) -> None:
        self._run.update(fields)
        self.run_file.write_text(json.dumps(self._run))

    def _reclaim(self) -> None:
        """Stop the worker and broker a killed run left (we hold the lock, so their owner is dead). The
        database is EmbeddedPostgres.start's: it stops a server nobody holds a handle on."""
        run = self._read_run()
        pid = run.get("desk_pid")
        if process_alive(pid) and is_desk(pid):
            self.say(f"stopping the desk (pid {pid}) left by a killed run")
            terminate(pid, timeout=10)
        pid = run.get("worker_pid")
        if process_alive(pid) and is_worker(pid):
            self.say(f"stopping the worker (pid {pid}) left by a killed run")
            terminate(pid, timeout=30)
        pid = run.get("broker_pid")
        if process_alive(pid) and is_tansu_broker(pid):
            self.say(f"stopping the Tansu broker (pid {pid}) left by a killed run")
            terminate(pid)

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.metrics_host}:{self.settings.metrics_port}/metrics"

    def status(self) -> dict:
        return {"kafka_bootstrap": self.settings.kafka_bootstrap,
                "database_url": redact(self.settings.database_url),
                "metrics_url": self.metrics_url, "topics": self.topics, "desk_url": self.desk_url}

    @property
    def desk_url(self) -> str:
        return f"http://{self.settings.desk_host}:{self.settings.desk_port}/"

    def write_status(self) -> None:
        # The full URL stays in the private state folder so local tools can connect; output shows it redacted.
        path = status_file(self.settings)
        path.write_text(json.dumps({**self.status(), "database_url_full": self.settings.database_url,
                                    "pid": os.getpid()}, indent=2))
        path.chmod(0o600)

    def worker_env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "DATABASE_URL": self.settings.database_url,
                "SENTINEL_METRICS_PORT": str(self.settings.metrics_port),
                "SENTINEL_METRICS_HOST": self.settings.metrics_host,
                "SENTINEL_STATE_DIR": str(self.settings.state_dir),
                "SENTINEL_VERBOSE": "1" if self.settings.verbose else "0",
                "SENTINEL_LOG_FORMAT": self.settings.log_format}

    def start_worker(self, log_file: Path | None = None) -> subprocess.Popen:
        out = open(log_file, "ab") if log_file else None
        self.worker = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"], env=self.worker_env(),
                                       stdout=out, stderr=subprocess.STDOUT if out else None)
        self._record(worker_pid=self.worker.pid)
        return self.worker

    def start_desk(self, log_file: Path | None = None) -> subprocess.Popen:
        """The desk web app (``sentinel desk serve``) on the stack's database and broker."""
        out = open(log_file, "ab") if log_file else None
        env = {**self.worker_env(), "SENTINEL_DESK_HOST": self.settings.desk_host,
               "SENTINEL_DESK_PORT": str(self.settings.desk_port)}
        self.desk = subprocess.Popen([sys.executable, "-m", "agents.cli", "desk", "serve"], env=env,
                                     stdout=out, stderr=subprocess.STDOUT if out else None)
        self._record(desk_pid=self.desk.pid)
        return self.desk

    def stop(self) -> None:
        if self._lock is None:
            return  # another run owns the state folder: nothing here is ours
        self._record(state="stopping")
        if self.desk and self.desk.poll() is None:
            self.desk.send_signal(signal.SIGTERM)
            try:
                self.desk.wait(10)
            except subprocess.TimeoutExpired:
                self.desk.kill()
                self.desk.wait()
        if self.worker and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        status_file(self.settings).unlink(missing_ok=True)
        self.run_file.unlink(missing_ok=True)
        os.close(self._lock)
        self._lock = None

    def __enter__(self) -> "Stack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def wait_forever_or_until(proc: subprocess.Popen) -> int:
    """Block until the process exits (its return code) or Ctrl-C."""
    while True:
        code = proc.poll()
        if code is not None:
            return code
        time.sleep(0.5)
