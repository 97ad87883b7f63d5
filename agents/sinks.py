"""The PostgreSQL sink: one transaction per batch, idempotent, retried through outages.

Every insert is ``ON CONFLICT DO NOTHING`` on the message's own key, so a batch that
is processed again after a crash or a rebalance writes nothing twice. An event's
rows hang off its parent row (the article, the chat message): they are written only
when that parent row is new in this transaction, so a replay under another model
version or another batch shape leaves the stored event's rows exactly as they were.

Outages (connection failures, statement timeouts, any error that is not about one
row's content) are retried with exponential back-off until the database is back; the
agent waits meanwhile, so consumption pauses and memory stays bounded. A batch the
database rejects for its content is written again event by event, one transaction
each, and the events it still rejects are returned to the caller (which dead-letters
them) instead of blocking the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from agents import errors, sensors
from agents.errors import Action, Failure, Stage
from agents.health import Health

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Rows to write together, each with its source (the message that made it; None for dead letters).

    Rows of ``children`` tables are written only for sources whose ``parent`` row is new.
    """

    parent: Table | None = None
    children: frozenset[Table] = frozenset()
    rows: dict[Table, list[tuple[object, dict]]] = field(default_factory=dict)
    fresh: set = field(default_factory=set)  # after the write: the sources whose parent row was new in it

    def add(self, table: Table, row: dict, source: object = None) -> None:
        self.rows.setdefault(table, []).append((source, row))

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def tables(self) -> list[Table]:
        """The parent table first, then the others in the order they were added."""
        return sorted(self.rows, key=lambda t: t is not self.parent)

    def units(self) -> list[Batch]:
        """One batch per source (its parent, children and other rows), and one per source-less row."""
        by_source: dict[object, Batch] = {}
        loose: list[Batch] = []
        for table in self.tables():
            for source, row in self.rows[table]:
                if source is None:
                    unit = Batch(self.parent, self.children)
                    loose.append(unit)
                else:
                    unit = by_source.setdefault(source, Batch(self.parent, self.children))
                unit.add(table, row, source)
        return list(by_source.values()) + loose


class PostgresSink:
    def __init__(self, engine: Engine, agent: str, retry_max: float = 10.0, health: Health | None = None,
                 sensor: sensors.Sensor | None = None, policy: errors.ErrorPolicy | None = None):
        """``sensor``: where writes, errors and outages are reported (default: the Prometheus sensor and
        ``health``; the worker's delegate holds both); ``policy``: which errors are outages to retry and
        which are rows to dead-letter (``agents/errors.py``)."""
        self.engine = engine
        self.agent = agent
        self.retry_max = retry_max
        self.health = health or Health()
        self.sensor = sensors.resolve(sensor, self.health)
        self.policy = policy or errors.default
        self.stopping = threading.Event()

    def write(self, batch: Batch) -> list[tuple[object, str]]:
        """Write the batch in one transaction; returns the (source, reason) of events the database rejected."""
        return self.retrying(self._write_batch, batch)

    def retrying(self, work, *args):
        """Run ``work(*args)`` through database outages: what the error policy retries (a database error that is
        not about a row's content) is retried with back-off; anything else is raised to the caller.

        Only for idempotent work: the batch writes, and what follows them (alert screening, delivery marks).
        """
        delay = 0.25
        while True:
            try:
                result = work(*args)
            except Exception as exc:
                if self.policy.decide(exc, Stage.DATABASE)[1] is not Action.RETRY:
                    raise
                self.sensor.on_db_error(self.agent)
                self.sensor.on_db_down()
                cause = type(getattr(exc, "orig", None) or exc).__name__
                self.sensor.on_outage("database", f"database unavailable ({cause})")
                if self.stopping.is_set():
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs", cause, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self.sensor.on_db_up()
            self.sensor.on_recovery("database")
            return result

    def _write_batch(self, batch: Batch) -> list[tuple[object, str]]:
        started = time.perf_counter()
        try:
            self._write_once(batch)
            rejected = []
        except SQLAlchemyError as exc:
            if not self._dead_letters(exc):
                raise
            self.sensor.on_db_error(self.agent)
            log.error("database rejected a batch (%s); writing it event by event", type(exc.orig or exc).__name__)
            rejected = self._write_event_by_event(batch)
        self.sensor.on_db_write(self.agent, time.perf_counter() - started)
        return rejected

    def _dead_letters(self, exc: SQLAlchemyError) -> bool:
        """Whether the error is about rows' content and the policy sends such rows to the dead letters."""
        return self.policy.decide(exc, Stage.DATABASE) == (Failure.DB_REJECTED, Action.DEAD_LETTER)

    def _write_once(self, batch: Batch) -> None:
        """One transaction; once it commits, ``batch.fresh`` holds the sources whose parent row it made."""
        with self.engine.begin() as conn:
            new_sources: set | None = None
            for table in batch.tables():
                values = batch.rows[table]
                if table is batch.parent:
                    (key,) = table.primary_key.columns
                    inserted = set(conn.execute(insert(table).on_conflict_do_nothing().returning(key),
                                                [row for _, row in values]).scalars())
                    new_sources = {source for source, row in values if row[key.name] in inserted}
                    continue
                if table in batch.children and new_sources is not None:
                    values = [(s, r) for s, r in values if s in new_sources]
                if values:
                    conn.execute(insert(table).on_conflict_do_nothing(), [row for _, row in values])
        batch.fresh = new_sources or set()

    def _write_event_by_event(self, batch: Batch) -> list[tuple[object, str]]:
        rejected = []
        batch.fresh = set()
        for unit in batch.units():
            try:
                self._write_once(unit)
                batch.fresh |= unit.fresh
            except SQLAlchemyError as exc:
                if not self._dead_letters(exc):
                    raise
                reason = str(exc.orig or exc).splitlines()[0]
                source = next(s for rows in unit.rows.values() for s, _ in rows)
                if source is None:  # a dead-letter row itself: nothing left to fall back to but the log
                    log.error("database rejected a dead-letter row (%s); it is kept in this log line only: %r",
                              reason, {k: v for table_rows in unit.rows.values() for _, row in table_rows
                                       for k, v in row.items() if k != "value"})
                    continue
                rejected.append((source, reason))
        return rejected
