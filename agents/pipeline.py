"""What flows through an agent, and the protocol news and chat implement.

The agent loop (``agents/loop.py``) owns everything the two agents share: taking
batches, parsing and dead letters, the models' lane, per-event isolation, the
database transaction, the produce and the acknowledgement. A pipeline says only
what differs: how to parse a message, which models to run, which rows and output
records an event makes, and what to do once its rows are committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Table

from agents.alerts.records import AlertRecord


@dataclass(eq=False)  # compared and hashed by identity: a message is one source of rows
class Received:
    """A consumed message with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # Kafka record time, seconds since the epoch

    @classmethod
    def from_event(cls, event) -> Received:
        m = event.message
        return cls(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


@dataclass
class Built:
    """What one valid event makes: its rows, its output records, its alerts, and what the
    pipeline's ``after_commit`` needs of it (``extra``)."""

    rows: list[tuple[Table, dict]]
    records: list[tuple[bytes, bytes]]
    alerts: list[AlertRecord] = field(default_factory=list)
    extra: Any = None
    # Records for topics other than the pipeline's output topic, by topic name (chat's auto-replies
    # on chat.outbound); produced with the output records, after the commit.
    other_records: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)


@dataclass
class Prepared:
    """A batch after the models: each stored event's message and what it built, and the dead letters."""

    built: list[tuple[Received, Built]]
    dead: list[dict]


class Pipeline(Protocol):
    agent: str  # the agent's name, in metrics and logs
    input_topic: str
    output_topic: str
    parent: Table  # one row per event; the event's other rows are written only when this row is new
    children: frozenset[Table]  # tables whose rows belong to the event's parent row

    def parse(self, raw: bytes | None) -> Any:
        """The event, or ``InvalidEvent`` with the dead-letter reason."""

    def infer(self, events: list) -> list:
        """The models over a batch of events (in the agent's model lane): one result per event."""

    def build(self, message: Received, event, result) -> Built:
        """Rows, output records and alerts of one event (an exception dead-letters the event alone)."""

    def after_commit(self, stored: list[Built]) -> list[AlertRecord]:
        """Work that needs the batch's rows committed (in the database thread; retried through outages)."""
