"""What people do with an alert: acknowledge it (someone is on it) and resolve it (dealt with).

Both record who and when, once: a second acknowledgement or resolution keeps the first one's name
and time (the statement's ``is null`` condition makes this hold under concurrent clicks too).
Resolving an alert nobody acknowledged acknowledges it as well. The detector's own ``status``
(``open`` while a spike episode lasts, ``closed`` when it clears) is left alone: it says what the
data did, these columns what people did. Used by the desk's API and by ``sentinel alerts ack|resolve``.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from agents.alerts import records

MAX_NAME = 64

COLUMNS = ("id, kind, key, severity, status, opened_at, last_seen_at, closed_at, payload, summary, "
           "acknowledged_by, acknowledged_at, resolved_by, resolved_at")


def lifecycle_status(row) -> str:
    """open, acknowledged or resolved: the people's view of an alert row."""
    if row.resolved_at is not None:
        return "resolved"
    if row.acknowledged_at is not None:
        return "acknowledged"
    return "open"


def as_dict(row) -> dict:
    """An alert row as the API and the CLI show it."""
    def iso(t):
        return t.isoformat() if t is not None else None

    return {"id": row.id, "kind": row.kind, "key": row.key, "name": records.shown_name(row.key, row.payload),
            "severity": row.severity,
            "status": lifecycle_status(row), "episode": row.status, "opened_at": iso(row.opened_at),
            "last_seen_at": iso(row.last_seen_at), "closed_at": iso(row.closed_at), "summary": row.summary,
            "payload": row.payload, "acknowledged_by": row.acknowledged_by,
            "acknowledged_at": iso(row.acknowledged_at), "resolved_by": row.resolved_by,
            "resolved_at": iso(row.resolved_at)}


def _check_name(by: str) -> str:
    name = (by or "").strip()
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"who acts must be named in 1 to {MAX_NAME} characters")
    return name


def _run(bind: Engine | Connection, statements: list[str], alert_id: str, by: str):
    params = {"id": alert_id, "by": _check_name(by)}

    def go(conn: Connection):
        for sql in statements:
            conn.execute(text(sql), params)
        return conn.execute(text(SELECT_ONE), params).first()

    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return go(conn)
    return go(bind)


def acknowledge(bind: Engine | Connection, alert_id: str, by: str):
    """Mark the alert acknowledged by ``by`` (first acknowledgement kept); its row, or None if no such alert."""
    return _run(bind, ["update alerts set acknowledged_by = :by, acknowledged_at = now() "
                       "where id = :id and acknowledged_at is null"], alert_id, by)


def resolve(bind: Engine | Connection, alert_id: str, by: str):
    """Mark the alert resolved by ``by`` (and acknowledged, if nobody had); its row, or None if no such alert."""
    return _run(bind, ["update alerts set acknowledged_by = :by, acknowledged_at = now() "
                       "where id = :id and acknowledged_at is null",
                       "update alerts set resolved_by = :by, resolved_at = now() "
                       "where id = :id and resolved_at is null"], alert_id, by)


STATUS_FILTERS = {
    "open": "acknowledged_at is null and resolved_at is null",
    "acknowledged": "acknowledged_at is not null and resolved_at is null",
    "resolved": "resolved_at is not null",
    "unresolved": "resolved_at is null",
    "all": "true",
}


# Statements joined from the fixed fragments above only: values always travel as bound parameters.
SELECT_ONE = f"select {COLUMNS} from alerts where id = :id"
SELECT_BY_STATUS = {status: f"select {COLUMNS} from alerts where {where} "
                            "and (cast(:keys as text[]) is null or key = any(cast(:keys as text[]))) "
                            "order by opened_at desc limit :limit"
                    for status, where in STATUS_FILTERS.items()}


def list_alerts(bind: Engine | Connection, status: str = "open", limit: int = 200,
                keys: list[str] | None = None) -> list:
    """Alert rows by lifecycle status, newest first: open (nobody has acknowledged it), acknowledged,
    resolved, unresolved (open or acknowledged) or all; only those of ``keys`` when given (a watchlist's)."""
    sql, params = text(SELECT_BY_STATUS[status]), {"limit": limit, "keys": None if keys is None else list(keys)}
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return list(conn.execute(sql, params))
    return list(bind.execute(sql, params))
