"""A harness around the real services for integration tests and benchmarks:
the embedded broker and database, real worker processes, produce and read helpers."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from infra.db import make_engine, migrate
from infra.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from infra.kafka import ensure_topics, topic_specs
from infra.settings import PROJECT_ROOT
from schemas import topics


@dataclass
class Services:
    broker: EmbeddedBroker
    postgres: EmbeddedPostgres

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def scalar(self, sql: str, **params):
        engine = make_engine(self.database_url, pool_size=1)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar()
        finally:
            engine.dispose()

    def rows(self, sql: str, **params) -> list:
        engine = make_engine(self.database_url, pool_size=1)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()


def start_services(folder: Path, partitions: int = 4) -> Services:
    broker = EmbeddedBroker(log_file=folder / "tansu.log").start()
    postgres = EmbeddedPostgres(folder / "pgdata", delete_on_stop=True).start()
    migrate(postgres.url)
    ensure_topics(broker.bootstrap, topic_specs(partitions))
    return Services(broker, postgres)


class Worker:
    """`sentinel worker` in its own process, as in production."""

    def __init__(self, services: Services, log_dir: Path, **env: str):
        self.port = free_port()
        self.log_path = log_dir / f"worker-{self.port}.log"
        self.env = {**os.environ, "KAFKA_BOOTSTRAP": services.bootstrap, "DATABASE_URL": services.database_url,
                    "SENTINEL_METRICS_PORT": str(self.port), "SENTINEL_STATE_DIR": str(log_dir / "state"),
                    "PYTHONUNBUFFERED": "1", **env}
        self.process: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 180.0) -> "Worker":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                self.health(timeout=1)
                return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"worker not ready in {ready_timeout}s:\n{self.log()[-3000:]}")

    def health(self, timeout: float = 5) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=timeout) as r:
            return json.loads(r.read())

    def wait_assigned(self, timeout: float = 60.0) -> "Worker":
        """Wait until the consumer group has given this worker its partitions (a join takes seconds)."""
        wait_until(lambda: self.health()["assigned_partitions"] > 0, timeout=timeout, interval=0.2,
                   message="worker assigned its partitions")
        return self

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else 0


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None,
            partitions: list[int | None] | None = None) -> None:
    """Send ``values`` in order; a ``partitions`` entry pins its record, ``None`` leaves it to the partitioner."""
    from infra.kafka import make_producer

    producer = make_producer(bootstrap)
    for i, value in enumerate(values):
        producer.send(topic, key=keys[i] if keys else None, value=value,
                      partition=partitions[i] if partitions else None)
    producer.flush()
    producer.close()


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux), in MiB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> list[int]:
    """A process's children, their children and so on (Linux)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            out += [child, *descendants(child)]
    return out


def tree_rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of a process with all its descendants (the worker and its model process), and of
    the process alone, in MiB."""
    own = rss_mib(pid)
    return own + sum(rss_mib(child) for child in descendants(pid)), own


def metric_total(metrics_text: str, name: str) -> float:
    """The sum of a metric's samples named exactly ``name`` (any labels) in Prometheus text."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(predicate, timeout: float, interval: float = 0.5, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{message} not reached in {timeout:.0f}s")


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list:
    """Every record of ``topic`` from its start: waits for ``expected`` records, then drains a little longer."""
    from infra.kafka import follow

    consumer = follow(bootstrap, [topic])
    records = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = list(consumer)
            records += batch
            if len(records) >= expected and not batch:
                break
    finally:
        consumer.close()
    return records


def news_behind_chat(services: Services, data: Path, chat: int, news: int, timeout: float = 600.0) -> dict:
    """News produced behind a chat backlog, to a started worker that runs both agents: ``chat`` banking77 test
    messages at once, then, once chat has stored its first draft, ``news`` Reuters headlines with their
    descriptions (``data``: the shared data folder). Returns the seconds from the news produce until every
    article is stored (``seconds``) and the chat messages still waiting then (``chat_waiting``)."""
    with open(data / "banking77" / "test.csv", encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    with open(data / "news_headlines" / "reuters_headlines.csv", encoding="utf-8-sig", newline="") as f:
        rows = [r for _, r in zip(range(news), csv.DictReader(f))]
    produce(services.bootstrap, topics.CHAT.name, [json.dumps({
        "id": f"chat-{i:06d}", "conversation_id": f"conv-{i:06d}", "customer_id": f"c{i}", "channel": "app",
        "text": texts[i % len(texts)]}).encode() for i in range(chat)])
    wait_until(lambda: services.scalar("select count(*) from reply_drafts") > 0, timeout=timeout, interval=0.2,
               message="chat working through its backlog")
    started = time.monotonic()
    produce(services.bootstrap, topics.NEWS.name, [json.dumps({
        "id": f"news-{i:06d}", "title": r["Headlines"], "text": r["Description"], "source": "reuters"}).encode()
        for i, r in enumerate(rows)])
    wait_until(lambda: services.scalar("select count(*) from news_articles") >= len(rows), timeout=timeout,
               interval=0.2, message="every news article stored")
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 2), "chat_waiting": chat - services.scalar("select count(*) from reply_drafts")}
