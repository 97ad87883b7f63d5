"""The desk's JSON API and pages against a real PostgreSQL and a real broker (embedded), in-process.

Drafts are stored as the chat agent stores them (rows in chat_messages and reply_drafts); replies
are read back from the real ``chat.outbound`` topic.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from agents.desk import store
from agents.desk.app import create_app
from infra.db import make_engine
from infra.harness import read_topic, start_services
from tests.helpers import sweep_outbox
from infra.settings import Settings
from schemas.tables import Alert, ChatMessage, ReplyDraft

pytestmark = pytest.mark.integration

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
DRAFT_FIELDS = {"message_id", "conversation_id", "text", "draft", "intent", "intent_score", "escalate",
                "escalation_reason", "retrieved", "status"}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    s = start_services(tmp_path_factory.mktemp("desk"))
    yield s
    s.broker.stop()
    s.postgres.stop()


@pytest.fixture(scope="module")
def engine(services):
    e = make_engine(services.database_url)
    store.add_user(e, "ann", "ann-password-1", "agent")
    store.add_user(e, "sam", "sam-password-1", "supervisor")
    yield e
    e.dispose()


@pytest.fixture(scope="module")
def settings(services):
    return Settings(database_url=services.database_url, kafka_bootstrap=services.bootstrap,
                    desk_login_max_per_user=5, desk_login_max_per_address=1000)


@pytest.fixture(scope="module")
def client(settings, engine):
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def add_draft(engine, message_id: str, conversation_id: str = "conv-1", text_: str = "Where is my card?",
              draft: str = "Cards usually arrive within 3 to 7 working days.", escalate: bool = False,
              intent: str = "card_arrival", score: float = 0.93, state: str | None = None) -> None:
    """A message and its draft, stored as the chat agent stores them."""
    with engine.begin() as conn:
        conn.execute(insert(ChatMessage.__table__).values(
            id=message_id, conversation_id=conversation_id, text=text_, sentiment_label="neutral", negative=0.1,
            customer_state=state,
            entities=[], kafka_partition=0, kafka_offset=0, event_time=datetime.now(UTC)))
        conn.execute(insert(ReplyDraft.__table__).values(
            message_id=message_id, conversation_id=conversation_id, intent=intent, intent_score=score,
            draft=draft, escalate=escalate, escalation_reason="risk_intent:lost_or_stolen_card" if escalate else None,
            retrieved=[{"id": f"kb-{intent}", "intent": intent, "score": score}], generator="none"))


def token(client, username="ann", password="ann-password-1") -> dict:
    r = client.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def outbound(services, expected: int) -> list:
    return read_topic(services.bootstrap, "chat.outbound", expected, timeout=20)


def test_api_needs_a_session_or_a_token(client):
    for method, path in [("get", "/api/drafts"), ("get", "/api/alerts?status=open"),
                         ("post", "/api/drafts/x/approve"), ("post", "/api/alerts/x/ack")]:
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path, headers={"Authorization": "Bearer nope"}).status_code == 401, path
    assert client.post("/api/login", json={"username": "ann", "password": "wrong-password"}).status_code == 401
    assert client.post("/api/login", json={"username": "nobody", "password": "ann-password-1"}).status_code == 401


def test_tokens_expire(client, engine):
    headers = token(client)
    assert client.get("/api/drafts", headers=headers).status_code == 200
    with engine.begin() as conn:
        conn.execute(text("update desk_sessions set expires_at = now() - interval '1 second' "
                          "where token_sha256 = :t"), {"t": store.token_digest(headers["Authorization"][7:])})
    assert client.get("/api/drafts", headers=headers).status_code == 401


def test_drafts_list_the_contract_fields_by_status(client, engine):
    add_draft(engine, "list-1", "conv-list")
    add_draft(engine, "list-2", "conv-list", escalate=True, intent="lost_or_stolen_card", score=0.99)
    headers = token(client)
    pending = {d["message_id"]: d for d in client.get("/api/drafts?status=pending", headers=headers).json()}
    assert DRAFT_FIELDS <= set(pending["list-1"])
    assert pending["list-1"]["status"] == "pending" and pending["list-1"]["escalate"] is False
    assert pending["list-2"]["escalate"] is True  # escalated drafts wait as pending
    assert pending["list-2"]["escalation_reason"] == "risk_intent:lost_or_stolen_card"
    assert pending["list-1"]["retrieved"] == [{"id": "kb-card_arrival", "intent": "card_arrival", "score": 0.93}]
    assert client.get("/api/drafts?status=bogus", headers=headers).status_code == 422


def test_approving_an_edited_draft_sends_it_once_and_keeps_the_decision(client, engine, services):
    add_draft(engine, "appr-1", "conv-appr")
    headers = token(client)
    r = client.post("/api/drafts/appr-1/approve", headers=headers, json={"text": "Your card is on its way."})
    assert r.status_code == 200, r.text
    assert r.json()["decided"] is True and r.json()["produced"] is False  # the desk only writes the outbox row
    assert sweep_outbox(engine, services.bootstrap) == 1  # the worker's sweep sends it
    again = client.post("/api/drafts/appr-1/approve", headers=headers)
    assert again.status_code == 200 and again.json()["decided"] is False and again.json()["produced"] is True
    assert sweep_outbox(engine, services.bootstrap) == 0
    records = [r for r in outbound(services, 1) if json.loads(r.value)["message_id"] == "appr-1"]
    assert len(records) == 1
    assert records[0].key == b"conv-appr"
    assert json.loads(records[0].value) == {"message_id": "appr-1", "conversation_id": "conv-appr",
                                            "text": "Your card is on its way.", "sent_by": "ann", "auto": False,
                                            "edited": True}
    headers_list = client.get("/api/drafts?status=sent", headers=headers).json()
    assert [d["status"] for d in headers_list if d["message_id"] == "appr-1"] == ["sent"]
    with engine.connect() as conn:
        reviews = conn.execute(text("select action, final_text, reviewer, intent, reviewed_at from reply_reviews "
                                    "where message_id = 'appr-1'")).all()
    assert len(reviews) == 1
    assert reviews[0][:4] == ("edit", "Your card is on its way.", "ann", "card_arrival")


def test_concurrent_approvals_send_once(client, engine, services):
    add_draft(engine, "race-1", "conv-race")
    headers = token(client)
    results = []

    def approve():
        try:
            r = client.post("/api/drafts/race-1/approve", headers=headers)
            results.append(r.json() if r.status_code == 200 else {"status_code": r.status_code})
        except Exception as exc:  # noqa: BLE001 - a server error is a result too
            results.append({"error": repr(exc)})

    threads = [threading.Thread(target=approve) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all("decided" in r for r in results), results
    assert sum(r["decided"] for r in results) == 1
    assert sweep_outbox(engine, services.bootstrap) == 1  # one outbox row: one record
    records = [r for r in outbound(services, 1) if json.loads(r.value)["message_id"] == "race-1"]
    assert len(records) == 1
    assert json.loads(records[0].value)["edited"] is False
    assert json.loads(records[0].value)["text"] == "Cards usually arrive within 3 to 7 working days."


def test_rejecting_needs_a_reason_and_is_final(client, engine):
    add_draft(engine, "rej-1", "conv-rej")
    headers = token(client)
    assert client.post("/api/drafts/rej-1/reject", headers=headers, json={"reason": "  "}).status_code == 422
    r = client.post("/api/drafts/rej-1/reject", headers=headers,
                    json={"reason": "wrong answer", "intent": "card_delivery_estimate"})
    assert r.status_code == 200 and r.json() == {"message_id": "rej-1", "status": "rejected", "decided": True}
    assert client.post("/api/drafts/rej-1/approve", headers=headers).status_code == 409
    assert client.post("/api/drafts/missing/approve", headers=headers).status_code == 404
    with engine.connect() as conn:
        row = conn.execute(text("select action, reason, corrected_intent, reviewer from reply_reviews "
                                "where message_id = 'rej-1'")).one()
    assert tuple(row) == ("reject", "wrong answer", "card_delivery_estimate", "ann")


def test_alert_lifecycle(client, engine):
    opened = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(insert(Alert.__table__).values(
            id="spike:acme:1", kind="sentiment_spike", key="acme", severity="high", status="open",
            opened_at=opened, last_seen_at=opened, payload={"window": {"negatives": 7, "mentions": 9}},
            summary="acme: negative news"))
    agent, supervisor = token(client), token(client, "sam", "sam-password-1")
    assert "spike:acme:1" in [a["id"] for a in client.get("/api/alerts?status=open", headers=agent).json()]
    assert client.post("/api/alerts/spike:acme:1/ack", headers=agent).status_code == 403  # supervisors acknowledge
    r = client.post("/api/alerts/spike:acme:1/ack", headers=supervisor)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == "sam"
    assert client.post("/api/alerts/spike:acme:1/ack", headers=supervisor).json()["acknowledged_by"] == "sam"
    assert "spike:acme:1" not in [a["id"] for a in client.get("/api/alerts?status=open", headers=agent).json()]
    assert client.post("/api/alerts/spike:acme:1/resolve", headers=agent).status_code == 403  # supervisors resolve
    r = client.post("/api/alerts/spike:acme:1/resolve", headers=supervisor)
    assert r.json()["status"] == "resolved" and r.json()["resolved_by"] == "sam" and r.json()["episode"] == "open"
    resolved = client.get("/api/alerts?status=resolved", headers=agent).json()
    assert resolved[0]["payload"] == {"window": {"negatives": 7, "mentions": 9}}
    assert client.post("/api/alerts/nope/ack", headers=supervisor).status_code == 404


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_pages_need_a_session_and_forms_need_the_csrf_token(settings, engine):
    with TestClient(create_app(settings, engine=engine)) as browser:
        assert browser.get("/drafts", follow_redirects=False).headers["location"] == "/login"
        page = browser.get("/login")
        assert page.status_code == 200
        # a form without the token (a page on another site posting it) does not sign in
        forged = browser.post("/login", data={"username": "ann", "password": "ann-password-1",
                                              "csrf_token": "forged"}, follow_redirects=False)
        assert forged.status_code == 403 and "desk_session" not in forged.cookies
        r = browser.post("/login", data={"username": "ann", "password": "ann-password-1",
                                         "csrf_token": csrf_of(page.text)}, follow_redirects=False)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        add_draft(engine, "page-1", "conv-page", state="angry")
        # the card and the conversation show how the customer feels
        assert "customer state angry" in browser.get("/drafts").text
        assert "customer state angry" in browser.get("/conversations/conv-page").text
        # a write by session cookie needs the page's token, in the form or the X-CSRF-Token header
        assert browser.post("/api/drafts/page-1/reject", json={"reason": "x"}).status_code == 403
        assert browser.post("/drafts/page-1/reject", data={"reason": "x", "csrf_token": "no"}).status_code == 403
        token_ = csrf_of(browser.get("/drafts").text)
        r = browser.post("/api/drafts/page-1/reject", json={"reason": "x"}, headers={"X-CSRF-Token": token_})
        assert r.status_code == 200


def clear_sign_in_attempts(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("delete from desk_login_attempts"))


def test_sign_in_is_rate_limited_per_user(settings, engine):
    clear_sign_in_attempts(engine)
    with TestClient(create_app(settings, engine=engine)) as c:
        for _ in range(5):
            assert c.post("/api/login", json={"username": "sam", "password": "guess-guess"}).status_code == 401
        r = c.post("/api/login", json={"username": "sam", "password": "sam-password-1"})  # even the right one
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert c.post("/api/login", json={"username": "ann", "password": "ann-password-1"}).status_code == 200
    clear_sign_in_attempts(engine)  # the later tests sign in as sam


def test_sign_in_is_rate_limited_per_address(settings, engine):
    clear_sign_in_attempts(engine)
    strict = settings.model_copy(update={"desk_login_max_per_address": 3})
    with TestClient(create_app(strict, engine=engine)) as c:
        for name in ("u1", "u2", "u3"):
            assert c.post("/api/login", json={"username": name, "password": "whatever-1"}).status_code == 401
        assert c.post("/api/login", json={"username": "ann", "password": "ann-password-1"}).status_code == 429
    clear_sign_in_attempts(engine)


def test_customer_text_is_shown_as_text_with_a_strict_policy(settings, engine):
    add_draft(engine, "xss-1", "conv-xss", text_=HOSTILE, draft=f"Reply {HOSTILE}")
    with TestClient(create_app(settings, engine=engine)) as browser:
        page = browser.get("/login")
        browser.post("/login", data={"username": "ann", "password": "ann-password-1",
                                     "csrf_token": csrf_of(page.text)})
        for path in ("/drafts", "/conversations/conv-xss"):
            r = browser.get(path)
            assert r.status_code == 200
            assert "<script>window.__pwned" not in r.text and "<img src=x" not in r.text
            assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in r.text
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert settings.database_url not in r.text


def test_bodies_are_size_limited(client):
    r = client.post("/api/login", content=b"{" + b" " * 200_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413


def add_spike_alert(engine, alert_id: str, key: str, opened: datetime = datetime(2026, 3, 2, 12, tzinfo=UTC)) -> None:
    """A spike alert on ``key`` with the evidence the detector stores (two stories: a hostile headline with a
    ``javascript:`` URL, and a plain one with an https URL) and three articles around it for its chart."""
    from schemas.tables import ArticleKey, NewsArticle

    with engine.begin() as conn:
        conn.execute(insert(Alert.__table__).values(
            id=alert_id, kind="sentiment_spike", key=key, severity="high", status="open",
            opened_at=opened, last_seen_at=opened, summary=f"{key}: negative news", payload={
                "note": HOSTILE,
                "window": {"start": (opened - timedelta(minutes=15)).isoformat(), "end": opened.isoformat(),
                           "stories": 18, "negatives": 14, "articles": 31, "outlets": 9, "tail": 1.2e-6},
                "baseline": {"expected_share": 0.12},
                "stories": [
                    {"article_id": f"{alert_id}-2", "headline": HOSTILE, "url": "javascript:window.__pwned=3",
                     "outlets": ["Wire <b>", "Daily"], "outlet_count": 4, "copies": 5, "negative": True,
                     "time": (opened - timedelta(minutes=9, seconds=59.742)).isoformat()},
                    {"article_id": f"{alert_id}-0", "headline": "Acme recalls \"widgets\" & more",
                     "url": 'https://news.example/a?x=1&y="2"', "outlets": ["Wire"], "outlet_count": 1,
                     "copies": 1, "negative": False, "time": (opened - timedelta(hours=5)).isoformat()}]}))
        for i, (hours, negative) in enumerate([(-5, False), (-1, True), (0, True)]):
            when = opened + timedelta(hours=hours)
            conn.execute(insert(NewsArticle.__table__).values(
                id=f"{alert_id}-{i}", text="t", sentiment_label="negative" if negative else "neutral",
                sentiment_score=0.9, negative=0.9 if negative else 0.1, neutral=0.1, positive=0.0,
                model_version="m", kafka_partition=0, kafka_offset=i, event_time=when, tickers=[]))
            conn.execute(insert(ArticleKey.__table__).values(
                article_id=f"{alert_id}-{i}", key=key, event_time=when, negative=0.9 if negative else 0.1,
                sentiment=-0.8 if negative else 0.2, is_negative=negative))


def test_alerts_page_shows_evidence_and_the_sentiment_chart(settings, engine):
    hostile_key = "acme<script>x</script>"
    add_spike_alert(engine, "spike:chart", hostile_key)
    with TestClient(create_app(settings, engine=engine)) as browser:
        browser.post("/login", data={"username": "sam", "password": "sam-password-1",
                                     "csrf_token": csrf_of(browser.get("/login").text)})
        page = browser.get("/alerts").text
        r = browser.post("/alerts/spike%3Achart/resolve", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
        assert r.status_code == 303
    with engine.connect() as conn:
        assert conn.execute(text("select resolved_by from alerts where id = 'spike:chart'")).scalar() == "sam"
    chart = page[page.index("<svg"):page.index("</svg>")]
    assert chart.count('class="bar"') == 3  # one bar per hour with articles
    assert re.search(r'<polyline points="[\d., ]+"', chart)
    assert "time (UTC)" in chart and "mean sentiment" in chart and "negative articles / hour" in chart  # axis titles
    assert "<script>x</script>" not in page and "acme&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page  # the evidence, as text
    # the statistics in a sentence, the stories as a table; times readable without the page's script
    assert ("14 of 18 stories negative (78%) in the 15 min to 02 Mar 2026 12:00 UTC, against a usual 12% ± 8%"
            in page)
    table = page[page.index('<table class="stories">'):page.index("</table>")]
    assert '<time class="when" datetime="2026-03-02T11:50:00.258000+00:00"' in table
    assert ">02 Mar 2026 11:50 UTC</time>" in table and ">2026-03-02T11:50" not in table
    assert "javascript:" not in table and table.count("<a ") == 1  # only the https URL is a link
    assert '<a href="https://news.example/a?x=1&amp;y=&#34;2&#34;" rel="noopener noreferrer nofollow">' in table
    assert "Acme recalls &#34;widgets&#34; &amp; more" in table and "Wire &lt;b&gt;, Daily and 2 more" in table
    # sentiment toward the company (article_keys) where stored: chart-2 is negative toward it
    assert re.search(r'class="sentiment-negative">negative \(-0\.80\)<', table)
    assert 'action="/alerts/spike%3Achart/resolve"' in page  # a supervisor may resolve


def test_escalations_page_lists_escalated_drafts_only(settings, engine):
    add_draft(engine, "esc-page", "conv-esc", escalate=True)
    add_draft(engine, "calm-page", "conv-calm")
    with TestClient(create_app(settings, engine=engine)) as browser:
        browser.post("/login", data={"username": "ann", "password": "ann-password-1",
                                     "csrf_token": csrf_of(browser.get("/login").text)})
        page = browser.get("/escalations").text
    assert 'data-message-id="esc-page"' in page and 'data-message-id="calm-page"' not in page


def test_hostile_message_ids_route_to_their_own_draft(settings, engine, client):
    from urllib.parse import quote

    odd = "odd/id?x=1#frag <b>"
    add_draft(engine, odd, "conv-odd")
    headers = token(client)
    r = client.post(f"/api/drafts/{quote(odd, safe='')}/reject", headers=headers, json={"reason": "test"})
    assert r.status_code == 200 and r.json()["message_id"] == odd
    add_draft(engine, "odd/two?y", "conv-odd")
    with TestClient(create_app(settings, engine=engine)) as browser:
        browser.post("/login", data={"username": "ann", "password": "ann-password-1",
                                     "csrf_token": csrf_of(browser.get("/login").text)})
        page = browser.get("/drafts").text
        action = re.search(r'action="(/drafts/odd[^"]*/approve)"', page).group(1)
        assert action == "/drafts/odd%2Ftwo%3Fy/approve"
        assert browser.post(action, data={"text": "  ", "csrf_token": csrf_of(page)}).status_code == 422  # emptied
        assert browser.post(action, data={"text": "Sent as written.", "csrf_token": csrf_of(page)},
                            follow_redirects=False).status_code == 303
        refused = browser.post(action, data={"text": "again", "csrf_token": "stale"}, headers={"HX-Request": "true"})
        assert refused.status_code == 200 and "The form has expired" in refused.text  # htmx swaps it into the card
        session = browser.cookies.get("desk_session")
        browser.post("/logout", data={"csrf_token": csrf_of(page)})
        assert browser.get("/drafts", follow_redirects=False).headers["location"] == "/login"  # signed out
        browser.cookies.set("desk_session", session)  # and the old cookie is no longer a session
        assert browser.get("/drafts", follow_redirects=False).headers["location"] == "/login"
    assert store.get_draft(engine, "odd/two?y").status == "sent"
