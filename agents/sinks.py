"""The PostgreSQL sink: one transaction per batch, idempotent, retried through outages.

Every insert is ``ON CONFLICT DO NOTHING`` on the message's own key, so a batch
that is processed again after a crash or a rebalance writes nothing twice.
Connection failures are retried with exponential back-off until the database
is back (the agent waits meanwhile, so consumption pauses and memory stays
bounded); a batch the database rejects for its content is retried row by row
and the rejected rows become dead letters instead of blocking the stream.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from infra import metrics

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_BYTES = 64 * 1024


@dataclass
class Batch:
    """Rows to write together, table by table, parents first."""

    rows: dict[Table, list[dict]] = field(default_factory=dict)

    def add(self, table: Table, row: dict) -> None:
        self.rows.setdefault(table, []).append(row)

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())


def dead_letter_row(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                    reason: str, detail: str) -> dict:
    digest = hashlib.sha256(value or b"").hexdigest()
    size = len(value or b"")
    if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
        detail = f"{detail} (value truncated to its first {MAX_DEAD_LETTER_BYTES} of {len(value)} bytes)"
        value = value[:MAX_DEAD_LETTER_BYTES]
    return {"topic": topic, "partition": partition, "offset": offset, "key": key, "value": value,
            "value_sha256": digest, "value_size": size, "reason": reason, "detail": detail[:2000]}


class PostgresSink:
    def __init__(self, engine: Engine, agent: str, retry_max: float = 10.0):
        self.engine = engine
        self.agent = agent
        self.retry_max = retry_max
        self.stopping = threading.Event()

    def write(self, batch: Batch, on_rejected=None) -> None:
        """Write the batch in one transaction; returns once it is committed (or the sink stops)."""
        self.retrying(self._write_batch, batch, on_rejected)

    def retrying(self, work, *args):
        """Run ``work(*args)`` through database outages: connection errors are retried with back-off.

        Only for idempotent work: the batch writes, and the alert screening that follows them.
        """
        delay = 0.25
        while True:
            try:
                result = work(*args)
                metrics.DB_UP.set(1)
                return result
            except (OperationalError, InterfaceError) as exc:
                metrics.DB_ERRORS.labels(self.agent).inc()
                metrics.DB_UP.set(0)
                if self.stopping.is_set():
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs",
                            type(getattr(exc, "orig", None) or exc).__name__, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.retry_max)

    def _write_batch(self, batch: Batch, on_rejected) -> None:
        started = time.perf_counter()
        try:
            self._write_once(batch.rows)
        except (OperationalError, InterfaceError):
            raise
        except DBAPIError as exc:
            metrics.DB_ERRORS.labels(self.agent).inc()
            log.error("database rejected a batch (%s); writing it row by row", type(exc.orig or exc).__name__)
            self._write_rows_one_by_one(batch, on_rejected)
        metrics.DB_WRITE.labels(self.agent).observe(time.perf_counter() - started)

    def _write_once(self, rows: dict[Table, list[dict]]) -> None:
        with self.engine.begin() as conn:
            for table, values in rows.items():
                if values:
                    conn.execute(insert(table).on_conflict_do_nothing(), values)

    def _write_rows_one_by_one(self, batch: Batch, on_rejected) -> None:
        for table, values in batch.rows.items():
            for row in values:
                try:
                    self._write_once({table: [row]})
                except (OperationalError, InterfaceError):
                    raise
                except DBAPIError as exc:
                    if on_rejected is None:
                        raise
                    on_rejected(table, row, str(exc.orig or exc).splitlines()[0])
