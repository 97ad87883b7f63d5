"""The outbox: a record leaves for Kafka only after it is stored, and it leaves as it was stored.

Every output record (``news.enriched``, ``chat.replies``, ``chat.outbound``) is an ``outbox`` row
(``schemas.tables.OutboxRecord``) written in the transaction that stores what it reports:

- The agent loop writes a parent's records with its rows. Records are rows of the parent, so a
  replayed event (its parent already stored) writes none: the records of a fresh model run over
  a replay are never sent, and what consumers get always matches what the desk and the tables show.
- Right after the commit, the loop sends the records of the parents that were new in it, then
  marks them produced. Its rows are due for the sweep only after ``outbox_redeliver_after``.
  For a replayed parent (a restart after a crash between commit and send) it sends the records
  its row says were never sent, as they were stored (``take_unsent``), and nothing else.
- The worker's sweep (``OutboxSweep``, on a timer) takes the rows that are due and unproduced,
  leasing them (``due_at`` moves on by the lease, so two workers never take the same row at
  once and a crash mid-send makes it due again), sends them, and marks them produced. It sends
  the desk's approved replies (due at once: the desk only writes the row, it never talks to
  Kafka and holds no lock across a send), and whatever a crash left unsent: a replayed parent's
  records are sent again only when their row says they never were.

Delivery is at least once: a crash between the broker's acknowledgement and the mark sends a
record again; consumers dedupe by the record's id (``message_id``, the article ``id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from schemas import topics
from schemas.tables import OutboxRecord

OUTBOX = OutboxRecord.__table__
OUTBOUND = topics.CHAT_OUTBOUND.name
KEEP_PRODUCED = timedelta(days=1)  # produced rows are kept this long (to look into), then pruned
WEBHOOK = "webhook"  # rows POSTed to watchlists' webhooks (agents/alerts/routing.py), never produced to Kafka


def row(topic: str, source_id: str, key: bytes | None, value: bytes, due_in: float) -> dict:
    """An ``outbox`` row that the sweep may send ``due_in`` seconds from now (0: at once)."""
    return {"topic": topic, "source_id": source_id, "key": key, "value": value,
            "due_at": datetime.now(UTC) + timedelta(seconds=due_in)}


@dataclass(frozen=True)
class Pending:
    topic: str
    source_id: str
    key: bytes | None
    value: bytes


def mark_produced(engine: Engine, sent: list[tuple[str, str]]) -> None:
    """Mark (topic, source id) pairs produced; a reply also on its ``outbound_replies`` row (what the desk shows)."""
    if not sent:
        return
    topics, ids = [t for t, _ in sent], [s for _, s in sent]
    with engine.begin() as conn:
        conn.execute(text("""
            update outbox o set produced_at = now()
            from unnest(cast(:topics as text[]), cast(:ids as text[])) as s(topic, source_id)
            where o.topic = s.topic and o.source_id = s.source_id and o.produced_at is null"""),
                     {"topics": topics, "ids": ids})
        replies = [s for t, s in sent if t == OUTBOUND]
        if replies:
            conn.execute(text("update outbound_replies set produced_at = now() "
                              "where message_id = any(:ids) and produced_at is null"), {"ids": replies})


def take_unsent(engine: Engine, source_ids: list[str], lease_s: float) -> list[Pending]:
    """The unsent records of these sources (replayed events whose first run stored them and then died before
    sending), taken under a lease whatever their due time: the loop sends them now, as they were stored."""
    if not source_ids:
        return []
    with engine.begin() as conn:
        rows = conn.execute(text("""
            update outbox o set due_at = now() + cast(:lease as interval)
            from (select topic, source_id from outbox where produced_at is null and source_id = any(:ids)
                  and topic <> :webhook for update skip locked) d
            where o.topic = d.topic and o.source_id = d.source_id
            returning o.topic, o.source_id, o.key, o.value, o.created_at"""),
            {"lease": timedelta(seconds=lease_s), "ids": source_ids, "webhook": WEBHOOK}).all()
    rows = sorted(rows, key=lambda r: (r.created_at, r.topic, r.source_id))
    return [Pending(r.topic, r.source_id, bytes(r.key) if r.key is not None else None, bytes(r.value))
            for r in rows]


class OutboxSweep:
    """Takes due, unproduced outbox rows under a lease (``take``) and marks them once sent (``done``): the rows
    for Kafka, or with ``webhooks`` the rows for watchlists' webhooks."""

    def __init__(self, engine: Engine, lease_s: float, limit: int = 500, webhooks: bool = False):
        self.engine = engine
        self.lease_s = lease_s
        self.limit = limit
        self.webhooks = webhooks

    def take(self) -> list[Pending]:
        with self.engine.begin() as conn:
            rows = conn.execute(text("""
                update outbox o set due_at = now() + cast(:lease as interval)
                from (select topic, source_id from outbox where produced_at is null and due_at <= now()
                      and (topic = :webhook) = :webhooks
                      order by due_at, created_at limit :n for update skip locked) d
                where o.topic = d.topic and o.source_id = d.source_id
                returning o.topic, o.source_id, o.key, o.value, o.created_at"""),
                {"lease": timedelta(seconds=self.lease_s), "n": self.limit, "webhook": WEBHOOK,
                 "webhooks": self.webhooks}).all()
        rows = sorted(rows, key=lambda r: (r.created_at, r.topic, r.source_id))
        return [Pending(r.topic, r.source_id, bytes(r.key) if r.key is not None else None, bytes(r.value))
                for r in rows]

    def done(self, sent: list[Pending]) -> None:
        mark_produced(self.engine, [(p.topic, p.source_id) for p in sent])

    def prune(self, keep: timedelta = KEEP_PRODUCED) -> int:
        """Delete rows produced more than ``keep`` ago (a replay of their event writes none again)."""
        with self.engine.begin() as conn:
            return conn.execute(text("delete from outbox where produced_at < now() - cast(:keep as interval)"),
                                {"keep": keep}).rowcount
