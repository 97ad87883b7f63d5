"""One alert record for spike and escalation alerts, and its one row shape.

An alert is stored first (in the transaction that decided it) with ``delivered_at``
empty; ``agents/alerts/delivery.py`` then produces it, counts it, hands it to the
webhook and marks it delivered. The ``alerts`` table is the outbox: an alert whose
delivery a crash or a retry interrupted is still undelivered there and is sent
again. Consumers dedupe by ``id``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text

from schemas.records import AlertMessage


@dataclass
class AlertRecord:
    id: str
    kind: str  # sentiment_spike, escalation
    key: str  # the company/ticker key, or the conversation id
    severity: str
    opened_at: datetime
    summary: str
    payload: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The ``alerts`` row that opens this alert (status open, not yet delivered)."""
        return {"id": self.id, "kind": self.kind, "key": self.key, "severity": self.severity, "status": "open",
                "opened_at": self.opened_at, "last_seen_at": self.opened_at, "payload": self.payload,
                "summary": self.summary}

    def as_dict(self) -> dict:
        """The alert as consumers see it (the topic's value, the webhook's body)."""
        return {"id": self.id, "kind": self.kind, "key": self.key, "severity": self.severity,
                "opened_at": self.opened_at.isoformat(), "payload": self.payload, "summary": self.summary}

    def message(self) -> tuple[bytes, bytes]:
        """The ``alerts`` topic record: keyed by the alert key."""
        return self.key.encode(), AlertMessage(**self.as_dict()).value()


def shown_name(key: str, payload: dict | None) -> str:
    """What a person reads for an alert's key: the linked company's name (``company:<id>`` keys carry it in the
    payload), else the key itself."""
    company = (payload or {}).get("company") if isinstance(payload, dict) else None
    return str(company.get("name") or key) if isinstance(company, dict) else key


def insert(conn, record: AlertRecord) -> bool:
    """Open the alert in this transaction; False when an alert with its id exists already."""
    row = record.row()
    inserted = conn.execute(text("""
        insert into alerts (id, kind, key, severity, status, opened_at, last_seen_at, payload, summary)
        values (:id, :kind, :key, :severity, :status, :opened_at, :last_seen_at, cast(:payload as jsonb), :summary)
        on conflict (id) do nothing returning id"""), {**row, "payload": json.dumps(row["payload"])}).first()
    return inserted is not None


def from_row(row) -> AlertRecord:
    """The record of a stored alert (for redelivery)."""
    return AlertRecord(row.id, row.kind, row.key, row.severity, row.opened_at, row.summary or "", row.payload)
