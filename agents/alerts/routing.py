"""Alerts routed to the webhooks of the watchlists that hold their company, at least once, through the outbox.

``route`` runs in the transaction that opens the alert: for each watchlist with a webhook that holds the alert's
linked company (the payload's ``company.id``) it writes an ``outbox`` row of topic ``webhook`` (key: the
watchlist's id; value: the body to POST, in the watchlist's format), so a stored alert always has its webhook
rows and a replayed one writes none again. ``send_due`` (a timer on every worker) takes the due rows under a lease
(``agents/outbox.py``), POSTs each to its watchlist's current URL and marks it sent on a 2xx; a failed POST stays
unsent and is tried again when its lease ends. Receivers dedupe by the alert id in the body.

Formats: ``slack`` (an incoming webhook's ``{"text", "blocks"}``, mrkdwn with ``&``, ``<`` and ``>`` escaped so a
headline cannot make a link or a mention) and ``teams`` (an Office 365 connector ``MessageCard``; its text is
markdown, so markdown and HTML characters are escaped).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import insert

from agents import outbox, sensors
from agents.alerts.records import AlertRecord, shown_name
from agents.alerts.webhook import Webhook

log = logging.getLogger(__name__)
TOPIC = outbox.WEBHOOK
FORMATS = ("slack", "teams")
MAX_TEXT = 2000


def slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_escape(value: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~])", r"\\\1", value)


def message(alert: AlertRecord) -> tuple[str, str]:
    """The alert's title and one-paragraph text, as plain (unescaped) text."""
    name = shown_name(alert.key, alert.payload)
    title = f"{alert.severity} {alert.kind.replace('_', ' ')}: {name}"
    return title[:200], (alert.summary or "")[:MAX_TEXT]


def body(alert: AlertRecord, fmt: str, watchlist: str) -> dict:
    """What a watchlist's webhook receives for the alert, in its format."""
    title, summary = message(alert)
    if fmt == "slack":
        line = f"*{slack_escape(title)}* (watchlist {slack_escape(watchlist)})"
        return {"text": f"{line}\n{slack_escape(summary)}", "alert_id": alert.id,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": line}},
                           {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(summary) or " "}},
                           {"type": "context", "elements": [{"type": "plain_text", "text": f"alert {alert.id}"[:300]}]}]}
    if fmt == "teams":
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": teams_escape(title),
                "title": teams_escape(title), "themeColor": "C0392B" if alert.severity == "high" else "D97706",
                "text": teams_escape(summary),
                "sections": [{"facts": [{"name": "watchlist", "value": teams_escape(watchlist)},
                                        {"name": "alert", "value": teams_escape(alert.id)},
                                        {"name": "opened", "value": alert.opened_at.isoformat()}]}]}
    raise ValueError(f"a webhook format is one of {', '.join(FORMATS)}")


def source_id(alert_id: str, watchlist_id: int) -> str:
    """The outbox row's id: one row per alert and watchlist (alert ids can be longer than the column)."""
    return hashlib.sha256(f"{watchlist_id}\n{alert_id}".encode()).hexdigest()


def route(conn, alert: AlertRecord) -> int:
    """In the alert's transaction: an outbox row per watchlist with a webhook that holds its company; how many."""
    company = alert.payload.get("company") if isinstance(alert.payload, dict) else None
    company_id = company.get("id") if isinstance(company, dict) else None
    if not company_id:
        return 0
    rows = conn.execute(text(
        "select w.id, w.name, w.webhook_format from watchlists w join watchlist_companies wc "
        "on wc.watchlist_id = w.id where wc.company_id = :c and w.webhook_url is not null order by w.id"),
        {"c": str(company_id)}).all()
    for w in rows:
        conn.execute(insert(outbox.OUTBOX).on_conflict_do_nothing(), outbox.row(
            TOPIC, source_id(alert.id, w.id), str(w.id).encode(),
            json.dumps(body(alert, w.webhook_format, w.name)).encode(), due_in=0))
    return len(rows)


def send_due(engine: Engine, sweep: outbox.OutboxSweep, post) -> tuple[int, int]:
    """POST the due webhook rows to their watchlists' URLs (``post(url, body) -> bool``, True on a 2xx) and mark
    the delivered ones sent; (done, failed). A row whose watchlist lost its webhook is marked done unsent."""
    due = sweep.take()
    if not due:
        return 0, 0
    with engine.connect() as conn:
        urls = dict(conn.execute(text("select id, webhook_url from watchlists where id = any(:ids)"),
                                 {"ids": sorted({int(p.key) for p in due})}).all())
    done, failed = [], 0
    for p in due:
        url = urls.get(int(p.key))
        if url is None:
            done.append(p)  # the watchlist or its webhook is gone: nobody to tell
        elif post(url, json.loads(p.value)):
            done.append(p)
        else:
            failed += 1
    sweep.done(done)
    if failed:
        log.warning("watchlist webhooks: %d of %d POSTs failed; they are tried again after the lease", failed, len(due))
    return len(done), failed


class Posters:
    """One POST per call to a webhook URL (``agents.alerts.webhook``: no redirects followed, the URL never logged,
    failures counted); a failed row waits for its lease to end rather than for retries here."""

    def __init__(self, sensor: sensors.Sensor | None = None):
        self.sensor = sensor
        self.hooks: dict[str, Webhook] = {}

    def post(self, url: str, payload: dict) -> bool:
        if url not in self.hooks:
            self.hooks[url] = Webhook(url, attempts=1, sensor=self.sensor)
        return self.hooks[url].send(payload)
