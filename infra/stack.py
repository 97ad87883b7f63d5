"""The running stack: embedded or configured services, prepared for the worker.

``Stack`` starts what is not configured (Tansu when KAFKA_BOOTSTRAP is unset,
PostgreSQL when DATABASE_URL is unset), applies migrations, creates topics and
records where everything is in ``<state_dir>/stack.json`` for ``sentinel status``
and ``sentinel replay``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.db import migrate, redact
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.kafka import ensure_topics, topic_specs
from infra.settings import Settings


def status_file(settings: Settings) -> Path:
    return settings.state_dir / "stack.json"


def read_status(settings: Settings) -> dict | None:
    """The running stack's status, or None when no live ``sentinel up`` wrote one."""
    path = status_file(settings)
    if not path.is_file():
        return None
    status = json.loads(path.read_text())
    try:
        os.kill(status["pid"], 0)
    except (OSError, KeyError):
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


class Stack:
    def __init__(self, settings: Settings, say=print):
        self.settings = settings
        self.say = say
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.worker: subprocess.Popen | None = None
        self.topics: list[str] = []

    def start(self) -> "Stack":
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        update = {}
        if not s.kafka_bootstrap:
            self.broker = EmbeddedBroker(log_file=s.state_dir / "tansu.log").start()
            update["kafka_bootstrap"] = self.broker.bootstrap
            self.say(f"embedded Kafka (Tansu, in memory) on {self.broker.bootstrap}")
        if not s.database_url:
            self.postgres = EmbeddedPostgres(s.state_dir / "pgdata").start()
            update["database_url"] = self.postgres.url
            self.say(f"embedded PostgreSQL in {s.state_dir / 'pgdata'}")
        self.settings = s = s.model_copy(update=update)
        migrate(s.database_url)
        self.topics = ensure_topics(s.kafka_bootstrap, topic_specs(s.topic_partitions))
        self.write_status()
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.metrics_host}:{self.settings.metrics_port}/metrics"

    def status(self) -> dict:
        return {"kafka_bootstrap": self.settings.kafka_bootstrap,
                "database_url": redact(self.settings.database_url),
                "metrics_url": self.metrics_url, "topics": self.topics}

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
                "SENTINEL_METRICS_HOST": self.settings.metrics_host}

    def start_worker(self, log_file: Path | None = None) -> subprocess.Popen:
        out = open(log_file, "ab") if log_file else None
        self.worker = subprocess.Popen([sys.executable, "-m", "infra.cli", "worker"], env=self.worker_env(),
                                       stdout=out, stderr=subprocess.STDOUT if out else None)
        return self.worker

    def stop(self) -> None:
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

    def __enter__(self) -> "Stack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_forever_or_until(proc: subprocess.Popen) -> int:
    """Block until the process exits (its return code) or Ctrl-C."""
    while True:
        code = proc.poll()
        if code is not None:
            return code
        time.sleep(0.5)
