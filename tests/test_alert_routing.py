"""Watchlists' webhooks on a real (embedded) PostgreSQL and a local HTTP endpoint: an alert's outbox rows are
written with it, one per watchlist with a webhook that holds its company, in Slack- or Teams-compatible JSON with
hostile text escaped; they are POSTed by their own sweep (never by the Kafka one), marked sent on a 2xx, and a
failed POST is tried again once its lease ends (at least once). The spike detector routes the alerts it opens, and
the worker's timer sends the due rows."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import text

from agents import companies, worker
from agents.alerts import records, routing
from agents.alerts.records import AlertRecord
from agents.backtest import DAY
from agents.outbox import OutboxSweep
from infra.settings import Settings
from models.companies import Company, Ticker
from tests.test_spikes_replay import Replay, burst, calm_day, clear

pytestmark = pytest.mark.integration

HOSTILE_NAME = "Acme <!channel> & *co*"
HOSTILE_SUMMARY = "8 of 10 stories negative: <https://evil.example|click here> [x](javascript:alert(1)) <@U123>"


class Endpoint(BaseHTTPRequestHandler):
    """Records each POST's path and JSON body on the server and answers with the server's ``status``."""

    def do_POST(self):
        self.server.bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    server.bodies, server.status = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def db(engine):
    with engine.begin() as conn:
        conn.execute(text("truncate alerts, outbox, watchlists, watchlist_companies cascade"))
    return engine


def watchlist(engine, name: str, companies: list[str], url: str | None = None, fmt: str | None = None) -> int:
    with engine.begin() as conn:
        wid = conn.execute(text("insert into watchlists (name, created_by, webhook_url, webhook_format) "
                                "values (:n, 'sam', :u, :f) returning id"), {"n": name, "u": url, "f": fmt}).scalar()
        for c in companies:
            conn.execute(text("insert into watchlist_companies (watchlist_id, company_id, added_by) "
                              "values (:w, :c, 'sam')"), {"w": wid, "c": c})
    return wid


def alert(alert_id: str = "sentiment_spike:company:ACME:1", company: str | None = "ACME") -> AlertRecord:
    payload = {"company": {"id": company, "name": HOSTILE_NAME, "ticker": "ACME"}} if company else {}
    return AlertRecord(alert_id, "sentiment_spike", f"company:{company}" if company else "acme", "high",
                       datetime(2026, 12, 7, 9, tzinfo=UTC), HOSTILE_SUMMARY, payload)


def open_alert(engine, record: AlertRecord) -> int:
    """Store the alert as the spike detector does, its webhook rows in the same transaction."""
    with engine.begin() as conn:
        assert records.insert(conn, record)
        return routing.route(conn, record)


def webhook_rows(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(text("select key, produced_at from outbox where topic = 'webhook' order by key")))


def test_an_alert_goes_to_each_watchlist_webhook_holding_its_company_once(db, endpoint):
    base = f"http://127.0.0.1:{endpoint.server_port}"
    slack = watchlist(db, "Desk <b>", ["ACME", "BETA"], f"{base}/slack", "slack")
    teams = watchlist(db, "Risk", ["ACME"], f"{base}/teams", "teams")
    watchlist(db, "No hook", ["ACME"])
    watchlist(db, "Other company", ["BETA"], f"{base}/other", "slack")
    assert open_alert(db, alert()) == 2
    with db.begin() as conn:  # a replayed alert writes no second row
        assert routing.route(conn, alert()) == 2
    assert [int(r.key) for r in webhook_rows(db)] == sorted([slack, teams])
    assert OutboxSweep(db, 30).take() == []  # the Kafka sweep never takes them
    sweep = OutboxSweep(db, 30, webhooks=True)
    assert routing.send_due(db, sweep, routing.Posters().post) == (2, 0)
    assert all(r.produced_at is not None for r in webhook_rows(db))
    assert routing.send_due(db, sweep, routing.Posters().post) == (0, 0)  # sent once
    received = dict(endpoint.bodies)
    assert set(received) == {"/slack", "/teams"}
    to_slack = received["/slack"]
    assert to_slack["alert_id"] == "sentiment_spike:company:ACME:1"
    for mrkdwn in [to_slack["text"]] + [b["text"]["text"] for b in to_slack["blocks"] if "text" in b]:
        assert "<" not in mrkdwn and ">" not in mrkdwn  # no link, mention or channel ping from the text
    assert "&lt;!channel&gt; &amp; *co*" in to_slack["text"] and "Desk &lt;b&gt;" in to_slack["text"]
    assert "&lt;https://evil.example|click here&gt;" in to_slack["text"]
    to_teams = received["/teams"]
    assert to_teams["@type"] == "MessageCard" and to_teams["@context"] == "https://schema.org/extensions"
    assert "<" not in json.dumps(to_teams) and "](" not in to_teams["text"]  # no HTML, no markdown link
    assert "\\[x\\]\\(javascript:alert\\(1\\)\\)" in to_teams["text"]


def test_a_failed_post_stays_unsent_and_is_tried_again_when_its_lease_ends(db, endpoint):
    watchlist(db, "Desk", ["ACME"], f"http://127.0.0.1:{endpoint.server_port}/hook", "slack")
    open_alert(db, alert())
    sweep, posters = OutboxSweep(db, 2, webhooks=True), routing.Posters()
    endpoint.status = 500
    assert routing.send_due(db, sweep, posters.post) == (0, 1)
    assert webhook_rows(db)[0].produced_at is None
    endpoint.status = 204
    assert routing.send_due(db, sweep, posters.post) == (0, 0)  # leased: not before the lease ends
    time.sleep(2.1)
    assert routing.send_due(db, sweep, posters.post) == (1, 0)
    assert len(endpoint.bodies) == 2 and webhook_rows(db)[0].produced_at is not None


def test_alerts_of_no_linked_company_or_a_removed_webhook_go_nowhere(db, endpoint):
    wid = watchlist(db, "Desk", ["ACME"], f"http://127.0.0.1:{endpoint.server_port}/hook", "teams")
    assert open_alert(db, alert("spike:plain", company=None)) == 0
    open_alert(db, alert())
    with db.begin() as conn:
        conn.execute(text("update watchlists set webhook_url = null where id = :id"), {"id": wid})
    assert routing.send_due(db, OutboxSweep(db, 30, webhooks=True), routing.Posters().post) == (1, 0)
    assert endpoint.bodies == [] and webhook_rows(db)[0].produced_at is not None  # done, nobody told


def test_an_alert_the_spike_detector_opens_for_a_watched_company_is_written_for_its_webhook(db, endpoint):
    """``SpikeDetector`` opens the burst's alert and routes it in the same transaction: a watchlist holding the
    company gets its outbox row (the news and detector are the spike replay's, with its fake analyzer)."""
    clear(db)
    companies.import_companies(db, [Company("HRWL", "Harwell Logistics", (Ticker("HRWL", "NYSE"),), source="user")])
    watched = watchlist(db, "Logistics", ["HRWL"], f"http://127.0.0.1:{endpoint.server_port}/hook", "slack")
    watchlist(db, "Elsewhere", ["ACME"], f"http://127.0.0.1:{endpoint.server_port}/other", "slack")
    replay = Replay(db)
    replay.pipeline.refresh_universe()  # the burst's $HRWL tags now link to the company: company:HRWL keys
    replay.detector.companies = lambda: replay.pipeline.universe.companies  # as the worker wires it
    events = calm_day(random.Random(16)) + burst(DAY + timedelta(hours=9))
    replay.feed(sorted(events, key=lambda e: (e["published_at"], e["id"])), 64)
    with db.connect() as conn:
        opened = conn.execute(text("select id from alerts where key = 'company:HRWL'")).scalars().all()
    assert len(opened) == 1 and [a.id for a in replay.alerts] == opened
    assert [int(r.key) for r in webhook_rows(db)] == [watched]
    assert routing.send_due(db, OutboxSweep(db, 30, webhooks=True), routing.Posters().post) == (1, 0)
    ((path, sent),) = endpoint.bodies
    assert path == "/hook" and sent["alert_id"] == opened[0] and "Harwell Logistics" in sent["text"]


class FakeChatModelProcess:
    """Stands in for the chat models' child process: the worker's wiring is under test, not its models."""

    def __init__(self, *args, **kwargs):
        pass

    def start(self) -> dict:
        return {"models": [], "generator": "fake-generator"}

    def close(self) -> None:
        pass


def test_the_workers_timer_posts_the_due_webhook_rows(db, endpoint, monkeypatch):
    """``build_app`` (the worker's wiring, chat agent only, its models faked and no broker asked for its cluster
    id) registers a timer at the outbox sweep's interval; one run of it POSTs the due row and marks it sent."""
    timers = {}
    create_app = worker.create_app

    def recording_create_app(settings):
        app = create_app(settings)
        register = app.timer

        def timer(interval, **options):
            def add(fun):
                timers[fun.__name__] = (interval, fun)
                return register(interval, **options)(fun)
            return add

        app.timer = timer
        return app

    monkeypatch.setattr(worker, "create_app", recording_create_app)
    monkeypatch.setattr(worker, "ModelProcess", FakeChatModelProcess)
    monkeypatch.setattr(worker, "cluster_id", lambda bootstrap: "fake-cluster")
    settings = Settings(agents="chat", database_url=db.url.render_as_string(hide_password=False),
                        kafka_bootstrap="127.0.0.1:9", auto_reply_min_score=0.9, outbox_sweep_interval=0.7)
    app = worker.build_app(settings)
    interval, send_watchlist_webhooks = timers["send_watchlist_webhooks"]
    assert interval == settings.outbox_sweep_interval
    watchlist(db, "Desk", ["ACME"], f"http://127.0.0.1:{endpoint.server_port}/hook", "teams")
    open_alert(db, alert())
    asyncio.run(send_watchlist_webhooks(app))
    assert [(path, sent["@type"]) for path, sent in endpoint.bodies] == [("/hook", "MessageCard")]
    assert webhook_rows(db)[0].produced_at is not None
    asyncio.run(send_watchlist_webhooks(app))
    assert len(endpoint.bodies) == 1  # sent once
