"""Desk sign-in under attack and the session's guards, against a real (embedded) PostgreSQL: the sign-in
limit counted in the database before any password check, trusted proxies, CSRF tokens bound to the
session, token revocation, who may work alerts, late edits, odd ids in URLs and oversized bodies.

No broker: approved replies wait in the outbox.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from agents.desk import store
from agents.desk.app import create_app
from infra.settings import Settings
from schemas.tables import Alert, ChatMessage, ReplyDraft

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def users(engine):
    store.add_user(engine, "ann", "ann-password-1", "agent")
    store.add_user(engine, "sam", "sam-password-1", "supervisor")
    return engine


@pytest.fixture
def settings(engine, users):
    with engine.begin() as conn:
        conn.execute(text("delete from desk_login_attempts"))
    url = engine.url.render_as_string(hide_password=False)
    return Settings(database_url=url, kafka_bootstrap="127.0.0.1:1", desk_login_max_per_user=5,
                    desk_login_max_per_address=1000)


def app_for(settings: Settings, engine, **changes):
    return create_app(settings.model_copy(update=changes), engine=engine)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(browser: TestClient, username: str = "ann", password: str = "ann-password-1") -> None:
    r = browser.post("/login", data={"username": username, "password": password,
                                     "csrf_token": csrf_of(browser.get("/login").text)}, follow_redirects=False)
    assert r.status_code == 303, r.text


def bearer(client: TestClient, username: str = "ann", password: str = "ann-password-1") -> dict:
    r = client.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def add_draft(engine, message_id: str, draft: str = "Cards usually arrive within 3 to 7 working days.") -> None:
    with engine.begin() as conn:
        conn.execute(insert(ChatMessage.__table__).values(
            id=message_id, conversation_id="conv-s", text="Where is my card?", sentiment_label="neutral",
            negative=0.1, entities=[], kafka_partition=0, kafka_offset=0, event_time=datetime.now(UTC)))
        conn.execute(insert(ReplyDraft.__table__).values(
            message_id=message_id, conversation_id="conv-s", intent="card_arrival", intent_score=0.93, draft=draft,
            escalate=False, retrieved=[], generator="none"))


# -- the sign-in limit ------------------------------------------------------------------------------------
class CountingVerifier:
    """Wraps the argon2 password check and counts the calls (thread-safe)."""

    def __init__(self, verify):
        self.verify = verify
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, stored_hash, password):
        with self.lock:
            self.calls += 1
        return self.verify(stored_hash, password)


class LoopbackServer:
    """The desk app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the desk did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def test_parallel_wrong_sign_ins_get_no_more_password_checks_than_the_limit(settings, engine, monkeypatch):
    verifier = CountingVerifier(store.verify_password)
    monkeypatch.setattr(store, "verify_password", verifier)
    # two desk processes (two apps on two ports) share the one limit in the database
    with LoopbackServer(app_for(settings, engine)) as first, LoopbackServer(app_for(settings, engine)) as second:
        start = threading.Barrier(30)
        codes = []

        def guess(n: int) -> None:
            with httpx.Client(base_url=(first, second)[n % 2], timeout=30) as c:
                start.wait()
                r = c.post("/api/login", json={"username": "sam", "password": f"wrong-guess-{n}"})
                codes.append(r.status_code)

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes) == [401] * 5 + [429] * 25, codes
    assert verifier.calls <= 5


def test_a_success_clears_the_users_count(settings, engine):
    with TestClient(app_for(settings, engine)) as c:
        for _ in range(4):
            assert c.post("/api/login", json={"username": "ann", "password": "wrong-guess"}).status_code == 401
        bearer(c)
        for _ in range(5):
            assert c.post("/api/login", json={"username": "ann", "password": "wrong-guess"}).status_code == 401
        r = c.post("/api/login", json={"username": "ann", "password": "ann-password-1"})
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 301


# -- trusted proxies --------------------------------------------------------------------------------------
def test_forwarded_address_and_scheme_are_believed_only_from_a_trusted_proxy(settings, engine):
    app = app_for(settings, engine, desk_trusted_proxies="10.0.0.0/30, 10.9.9.9", desk_login_max_per_address=3,
                  desk_login_max_per_user=1000)
    with TestClient(app, client=("10.0.0.1", 40000)) as proxy, \
            TestClient(app, client=("198.51.100.7", 40000)) as direct:
        one = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
        for n in range(3):
            r = proxy.post("/api/login", json={"username": f"nobody-{n}", "password": "whatever-1"}, headers=one)
            assert r.status_code == 401
        assert proxy.post("/api/login", json={"username": "ann", "password": "ann-password-1"},
                          headers=one).status_code == 429  # that client is limited ...
        other = {"X-Forwarded-For": "203.0.113.6", "X-Forwarded-Proto": "https"}
        assert proxy.post("/api/login", json={"username": "ann", "password": "ann-password-1"},
                          headers=other).status_code == 200  # ... not everyone behind the proxy
        # behind TLS the cookies are Secure
        page = proxy.get("/login", headers=other)
        assert "secure" in page.headers["set-cookie"].lower()
        csrf_cookie = page.headers["set-cookie"].split(";")[0]  # the client keeps Secure cookies for https only
        r = proxy.post("/login", headers={**other, "Cookie": csrf_cookie}, follow_redirects=False,
                       data={"username": "ann", "password": "ann-password-1", "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))
        # a peer that is no trusted proxy cannot pick its address or scheme
        spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        for n in range(3):
            direct.post("/api/login", json={"username": f"nobody-{n}", "password": "whatever-1"}, headers=spoofed)
        spoofed["X-Forwarded-For"] = "203.0.113.10"
        assert direct.post("/api/login", json={"username": "ann", "password": "ann-password-1"},
                           headers=spoofed).status_code == 429
        assert "secure" not in direct.get("/login", headers=spoofed).headers["set-cookie"].lower()


# -- CSRF bound to the session ----------------------------------------------------------------------------
def test_csrf_tokens_are_bound_to_the_session_and_rotated_at_sign_in(settings, engine):
    add_draft(engine, "csrf-1")
    app = app_for(settings, engine)  # one desk: one key signs every browser's tokens
    with TestClient(app) as browser:
        before = csrf_of(browser.get("/login").text)
        browser.post("/login", data={"username": "ann", "password": "ann-password-1", "csrf_token": before})
        write = {"reason": "not for this customer"}
        assert browser.post("/api/drafts/csrf-1/reject", json=write, headers={"X-CSRF-Token": before}).status_code \
            == 403  # the sign-in form's token does not outlive sign-in
        anns = csrf_of(browser.get("/drafts").text)
        browser.post("/logout", data={"csrf_token": anns})
        sign_in(browser, "sam", "sam-password-1")  # the same browser, another session
        assert browser.post("/api/drafts/csrf-1/reject", json=write, headers={"X-CSRF-Token": anns}).status_code \
            == 403
        assert browser.post("/drafts/csrf-1/reject", data={**write, "csrf_token": anns}).status_code == 403
        sams = csrf_of(browser.get("/drafts").text)
        with TestClient(app) as other:  # another browser, given this one's CSRF cookie
            sign_in(other)
            domain = next(c.domain for c in other.cookies.jar if c.name == "desk_csrf")
            other.cookies.delete("desk_csrf")
            other.cookies.set("desk_csrf", browser.cookies.get("desk_csrf"), domain=domain)
            assert other.post("/api/drafts/csrf-1/reject", json=write,
                              headers={"X-CSRF-Token": sams}).status_code == 403
        assert browser.post("/api/drafts/csrf-1/reject", json=write, headers={"X-CSRF-Token": sams}).status_code \
            == 200


# -- revocation ---------------------------------------------------------------------------------------------
def test_api_logout_revokes_the_token_it_is_called_with(settings, engine):
    with TestClient(app_for(settings, engine)) as c:
        mine, other = bearer(c), bearer(c)
        assert c.post("/api/logout", headers=mine).status_code == 200
        assert c.get("/api/drafts", headers=mine).status_code == 401
        assert c.post("/api/logout", headers=mine).status_code == 401
        assert c.get("/api/drafts", headers=other).status_code == 200  # only that token


def test_disabled_users_lose_their_sessions_and_cannot_sign_in(settings, engine):
    store.add_user(engine, "dora", "dora-password-1", "agent")
    with TestClient(app_for(settings, engine)) as c:
        headers = bearer(c, "dora", "dora-password-1")
        assert store.set_disabled(engine, "dora", True) == 1
        assert c.get("/api/drafts", headers=headers).status_code == 401
        assert c.post("/api/login", json={"username": "dora", "password": "dora-password-1"}).status_code == 401
        store.set_disabled(engine, "dora", False)
        bearer(c, "dora", "dora-password-1")


# -- roles ------------------------------------------------------------------------------------------------
def test_only_supervisors_acknowledge_and_resolve_alerts(settings, engine):
    opened = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(Alert.__table__).values(
            id="spike:roles", kind="sentiment_spike", key="roles", severity="high", status="open",
            opened_at=opened, last_seen_at=opened, payload={}, summary="roles: negative news"))
    with TestClient(app_for(settings, engine)) as c:
        agent = bearer(c)
        for action in ("ack", "resolve"):
            r = c.post(f"/api/alerts/spike:roles/{action}", headers=agent)
            assert r.status_code == 403 and "only a supervisor" in r.json()["detail"]
    with TestClient(app_for(settings, engine)) as browser:
        sign_in(browser)
        page = browser.get("/alerts").text
        assert "roles: negative news" in page and 'action="/alerts/spike%3Aroles/ack"' not in page  # no buttons
        r = browser.post("/alerts/spike%3Aroles/ack", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 403
    with TestClient(app_for(settings, engine)) as c:
        r = c.post("/api/alerts/spike:roles/ack", headers=bearer(c, "sam", "sam-password-1"))
        assert r.status_code == 200 and r.json()["acknowledged_by"] == "sam"


# -- drafts -------------------------------------------------------------------------------------------------
def test_editing_a_sent_draft_is_refused_with_what_was_sent(settings, engine):
    add_draft(engine, "late-1", draft="The original draft.")
    with TestClient(app_for(settings, engine)) as c:
        headers = bearer(c)
        assert c.post("/api/drafts/late-1/approve", headers=headers, json={"text": "What was sent."}).status_code \
            == 200
        late = c.post("/api/drafts/late-1/approve", headers=headers, json={"text": "A late edit."})
        assert late.status_code == 409 and late.json()["sent_text"] == "What was sent."
        assert "What was sent." in late.json()["detail"]
        again = c.post("/api/drafts/late-1/approve", headers=headers, json={"text": "What was sent."})
        assert again.status_code == 200 and again.json()["decided"] is False  # the same text: nothing to refuse
        assert [d["sent_text"] for d in c.get("/api/drafts?status=sent", headers=headers).json()
                if d["message_id"] == "late-1"] == ["What was sent."]
    with TestClient(app_for(settings, engine)) as browser:
        sign_in(browser)
        page = browser.get("/drafts?status=sent").text
        card = page[page.index('data-message-id="late-1"'):]
        card = card[:card.index("</article>")]
        assert "What was sent." in card and "The original draft." not in card
        r = browser.post("/drafts/late-1/approve", headers={"HX-Request": "true"},
                         data={"text": "Another late edit.", "csrf_token": csrf_of(page)})
        assert "already sent" in r.text and "What was sent." in r.text


def test_card_buttons_act_on_their_own_draft_whatever_its_id(settings, engine):
    add_draft(engine, "dots/../plain")
    add_draft(engine, "plain")
    with TestClient(app_for(settings, engine)) as browser:
        sign_in(browser)
        page = browser.get("/drafts").text
        card = page[page.index('data-message-id="dots/../plain"'):]
        card = card[:card.index("</article>")]
        approve = re.search(r'<form method="post" action="([^"]+)" class="decide"\s+hx-post="([^"]+)"', card)
        assert approve.group(1) == approve.group(2) == "/drafts/dots%2F..%2Fplain/approve"
        reject = re.search(r'class="reject" formaction="([^"]+)"', card).group(1)
        assert browser.post(reject, data={"reason": "wrong", "csrf_token": csrf_of(page)},
                            follow_redirects=False).status_code == 303
    assert store.get_draft(engine, "dots/../plain").status == "rejected"
    assert store.get_draft(engine, "plain").status == "pending"


def test_a_chunked_oversized_body_gets_413(settings, engine):
    def chunks():
        for _ in range(20):
            yield b" " * 10_000

    with TestClient(app_for(settings, engine, desk_max_body=65536)) as c:
        r = c.post("/api/login", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
        assert r.headers["x-frame-options"] == "DENY"
