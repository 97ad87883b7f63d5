"""Replay a file of events into a topic at a steady rate (kafka-python producer)."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from infra.kafka import make_producer
from infra.progress import progress

CSV_ALIASES = {"headline": "title", "headlines": "title", "time": "published_at", "date": "published_at",
               "datetime": "published_at", "description": "text", "article": "text"}


def read_events(path: Path) -> list[bytes]:
    """Raw message values from JSONL (one JSON value per line, sent as is) or CSV (one object per row).

    JSONL lines are sent unchanged, malformed ones included: validating is the worker's job.
    CSV rows get an ``id`` (a hash of the row) when they have none.
    """
    if path.suffix.lower() == ".csv":
        return [json.dumps(row, ensure_ascii=False).encode() for row in _csv_rows(path)]
    with path.open("rb") as f:
        return [line.rstrip(b"\r\n") for line in f if line.strip()]


def _csv_rows(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            event = {CSV_ALIASES.get(k.strip().lower(), k.strip().lower()): v for k, v in row.items() if k}
            if isinstance(event.get("tickers"), str):
                event["tickers"] = [t for t in event["tickers"].replace(";", ",").split(",") if t.strip()]
            event.setdefault("id", hashlib.sha1(json.dumps(row, sort_keys=True).encode()).hexdigest()[:16])
            yield event


def _key(value: bytes) -> bytes | None:
    try:
        obj = json.loads(value)
        return str(obj["id"]).encode() if isinstance(obj, dict) and "id" in obj else None
    except (ValueError, UnicodeDecodeError):
        return None


def replay(values: list[bytes], bootstrap: str, topic: str, rate: float = 0.0, show_progress: bool = True,
           bootstrap_timeout_s: float = 30.0) -> int:
    """Send ``values`` (keyed by their ``id``) at ``rate`` events/s (0 = as fast as possible); an unreachable
    broker raises kafka's KafkaTimeoutError after ``bootstrap_timeout_s``."""
    producer = make_producer(bootstrap, bootstrap_timeout_s)
    started = time.monotonic()
    bar = progress() if show_progress else None
    try:
        if bar:
            bar.__enter__()
            task = bar.add_task(f"replay → {topic}", total=len(values), info="")
        for n, value in enumerate(values):
            if rate > 0:
                due = started + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(topic, key=_key(value), value=value)
            if bar and (n % 50 == 49 or n == len(values) - 1):
                bar.update(task, advance=50 if n % 50 == 49 else (n % 50) + 1,
                           info=f"{(n + 1) / max(time.monotonic() - started, 1e-6):.0f}/s")
        producer.flush()
    finally:
        if bar:
            bar.__exit__(None, None, None)
        producer.close()
    return len(values)
