"""Company pages and watchlists on a real (embedded) PostgreSQL, in-process: the companies with news (watched
first, each with its negative share against the usual one, its last story and open alerts), a company's page with
hostile headlines and URLs as inert text, watchlists that only their owner (or, shared, their creator and
supervisors) may change, and the alerts page filtered by a watchlist."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings as hypothesis_settings, strategies as st
from sqlalchemy import insert, text

from agents.desk import present, store
from agents.desk.app import create_app
from agents.desk.deps import make_templates
from infra.settings import Settings
from schemas.tables import Alert, ArticleKey, CompanyRow, NewsArticle
from tests.test_desk_api import HOSTILE, csrf_of

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
HOUR = NOW.replace(minute=0, second=0, microsecond=0)  # times inside one hour fall in one bar of the chart
TABLES = "news_articles, article_keys, stories, alerts, companies, watchlists, watchlist_companies"


@pytest.fixture(scope="module")
def users(engine):
    return {name: store.add_user(engine, name, f"{name}-password-1", role)
            for name, role in (("ann", "agent"), ("bob", "agent"), ("sam", "supervisor"))}


@pytest.fixture
def db(engine, users):
    with engine.begin() as conn:
        conn.execute(text(f"truncate {TABLES} cascade"))
        conn.execute(text("delete from desk_login_attempts"))
        conn.execute(insert(CompanyRow.__table__), [
            {"id": "ACME", "name": "Acme <b>Corp</b>", "tickers": [{"symbol": "ACME", "exchange": "NYSE"}],
             "source": "user"},
            {"id": "BETA", "name": "Beta Bank", "tickers": [], "source": "user"},
            {"id": "QUIET", "name": "Quiet Co", "tickers": [], "source": "user"}])  # no news: not listed
    return engine


@pytest.fixture(scope="module")
def desk_settings(engine):
    return Settings(database_url=engine.url.render_as_string(hide_password=False), desk_login_max_per_user=1000,
                    desk_login_max_per_address=1000)


def signed_in(settings: Settings, engine, name: str) -> TestClient:
    client = TestClient(create_app(settings, engine=engine))
    r = client.post("/login", data={"username": name, "password": f"{name}-password-1",
                                    "csrf_token": csrf_of(client.get("/login").text)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def add_article(engine, article_id: str, company_id: str, hours_ago: float, negative: bool, title: str = "News",
                url: str | None = None, source: str = "Wire", story: str | None = None,
                when: datetime | None = None) -> None:
    """An article naming the company, stored as the news agent stores it (its story, when given, too)."""
    when = when or NOW - timedelta(hours=hours_ago)
    with engine.begin() as conn:
        if story is not None:
            conn.execute(text(
                "insert into stories (id, first_seen, last_seen, headline, normalized, outlets, copies) "
                "values (:id, :t, :t, :h, :h, cast(:o as jsonb), 1) on conflict (id) do update set "
                "copies = stories.copies + 1, outlets = stories.outlets || cast(:o as jsonb)"),
                {"id": story, "t": when, "h": title, "o": json.dumps([source])})
        conn.execute(insert(NewsArticle.__table__).values(
            id=article_id, title=title, text=title, source=source, url=url, tickers=[], story_id=story,
            sentiment_label="negative" if negative else "neutral", sentiment_score=0.9,
            negative=0.9 if negative else 0.1, neutral=0.1, positive=0.0, model_version="m", kafka_partition=0,
            kafka_offset=0, event_time=when))
        conn.execute(insert(ArticleKey.__table__).values(
            article_id=article_id, key=f"company:{company_id}", event_time=when, story_id=story,
            negative=0.9 if negative else 0.05, sentiment=-0.8 if negative else 0.5, is_negative=negative))


def add_alert(engine, alert_id: str, key: str, acknowledged: bool = False, resolved: bool = False,
              hours_ago: float = 1) -> None:
    opened = NOW - timedelta(hours=hours_ago)
    with engine.begin() as conn:
        conn.execute(insert(Alert.__table__).values(
            id=alert_id, kind="sentiment_spike", key=key, severity="high", status="open", opened_at=opened,
            last_seen_at=opened, summary=f"{key}: negative news",
            acknowledged_by="sam" if acknowledged or resolved else None,
            acknowledged_at=opened if acknowledged or resolved else None,
            resolved_by="sam" if resolved else None, resolved_at=opened if resolved else None,
            payload={"window": {"stories": 10, "negatives": 8}, "company": {"id": key, "name": key}}))


def watchlist_id(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("select id from watchlists where name = :n"), {"n": name}).scalar_one()


def on_list(engine, name: str) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(
            "select company_id from watchlist_companies wc join watchlists w on w.id = wc.watchlist_id "
            "where w.name = :n order by 1"), {"n": name})]


def post_form(client: TestClient, action: str, **fields):
    """A desk form posted with the CSRF token of the client's own watchlists page."""
    token = csrf_of(client.get("/watchlists").text)
    return client.post(action, data={"csrf_token": token, **fields}, follow_redirects=False)


# -- /companies -----------------------------------------------------------------------------------------
def test_companies_list_shares_against_the_baseline_last_story_and_open_alerts(db, desk_settings):
    for i, (hours, negative) in enumerate([(1, True), (5, True), (20, False)]):  # last 24 h: 2 of 3 negative
        add_article(db, f"acme-recent-{i}", "ACME", hours, negative, title=f"Acme recent {i}", story=f"s-acme-{i}")
    for i, (days, negative) in enumerate([(2, True), (3, False), (4, False), (7.5, False), (9, True)]):
        add_article(db, f"acme-old-{i}", "ACME", days * 24, negative)  # the 7 days before: 1 of 4; day 9 is out
    add_article(db, "beta-1", "BETA", 0.5, False, title="Beta opens a branch")
    add_alert(db, "a-open", "company:ACME")
    add_alert(db, "a-ack", "company:ACME", acknowledged=True)
    add_alert(db, "a-resolved", "company:ACME", resolved=True)
    add_alert(db, "b-resolved", "company:BETA", resolved=True)
    ann, bob = signed_in(desk_settings, db, "ann"), signed_in(desk_settings, db, "bob")
    listed = ann.get("/api/companies").json()
    assert [c["id"] for c in listed] == ["BETA", "ACME"]  # the latest news first; QUIET has none
    acme = listed[1]
    assert acme["name"] == "Acme <b>Corp</b>" and acme["tickers"] == ["ACME.NYSE"]
    assert (acme["negatives"], acme["articles"]) == (2, 3) and acme["negative_share"] == pytest.approx(2 / 3)
    assert (acme["baseline_negatives"], acme["baseline_articles"]) == (1, 4)
    assert acme["baseline_share"] == pytest.approx(0.25)
    assert acme["last_story"]["headline"] == "Acme recent 0"
    assert datetime.fromisoformat(acme["last_story"]["time"]) == NOW - timedelta(hours=1)
    assert (acme["open_alerts"], acme["unresolved_alerts"]) == (1, 2) and listed[0]["open_alerts"] == 0
    # ann watches ACME: it comes first for her, not for bob
    assert post_form(ann, "/watchlists", name="Mine").status_code == 303
    assert post_form(ann, f"/watchlists/{watchlist_id(db, 'Mine')}/add", company_id="ACME").status_code == 303
    assert [(c["id"], c["watched"]) for c in ann.get("/api/companies").json()] == [("ACME", True), ("BETA", False)]
    assert [c["id"] for c in bob.get("/api/companies").json()] == ["BETA", "ACME"]
    page = ann.get("/companies").text
    rows = re.findall(r"<tr(?: class=\"watched\")?>\s*<th scope=\"row\"><a href=\"/companies/(\w+)\"", page)
    assert rows == ["ACME", "BETA"] and "Acme &lt;b&gt;Corp&lt;/b&gt;" in page and "<b>Corp" not in page
    assert "67% <span class=\"meta\">(2 of 3)</span>" in page and "25% <span class=\"meta\">(1 of 4)</span>" in page
    assert '<a href="/companies"' in page and 'aria-current="page">Companies</a>' in page  # the nav link
    assert TestClient(create_app(desk_settings, engine=db)).get("/api/companies").status_code == 401


# -- /companies/{id} ------------------------------------------------------------------------------------
def test_company_page_shows_stories_toward_it_as_inert_text_and_its_alerts(db, desk_settings):
    add_article(db, "acme-x", "ACME", 0, True, title=HOSTILE, url="javascript:window.__pwned=3",
                source='Wire <i>"x"</i>', story="s-x", when=HOUR - timedelta(minutes=110))
    add_article(db, "acme-x2", "ACME", 0, True, title=HOSTILE, url="https://copy.example/x", source="Daily",
                story="s-x", when=HOUR - timedelta(minutes=100))  # a second copy of the story: its URL is the link
    add_article(db, "acme-ok", "ACME", 30, False, title='Acme "widgets" & more', url="https://news.example/a?x=1&y=2")
    add_article(db, "acme-js", "ACME", 40, False, title="Only a script URL", url="JAVASCRIPT:alert(1)")
    add_alert(db, "spike:acme", "company:ACME", acknowledged=True, hours_ago=3)
    ann = signed_in(desk_settings, db, "ann")
    page = ann.get("/companies/ACME").text
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "onerror=" not in page.replace("onerror=&#34;", "")  # only as escaped text
    table = page[page.index('<table class="stories">'):page.index("</table>")]
    assert "javascript" not in table.lower() and table.count("<a ") == 2  # only http(s) URLs are links
    assert '<a href="https://copy.example/x" rel="noopener noreferrer nofollow">' in table
    assert '<a href="https://news.example/a?x=1&amp;y=2" rel="noopener noreferrer nofollow">' in table
    assert "Wire &lt;i&gt;&#34;x&#34;&lt;/i&gt;, Daily" in table and re.search(r'class="num">2<', table)  # copies
    assert re.search(r'class="sentiment-negative">negative \(-0\.80\)<', table)  # toward the company
    assert re.search(r'class="sentiment-positive">positive \(\+0\.50\)<', table)
    assert table.index("&lt;script&gt;") < table.index("widgets")  # newest first
    chart = page[page.index("<svg"):page.index("</svg>")]
    assert chart.count('class="bar"') == 3  # one per hour with articles in the 7 days
    history = page[page.index('<table class="stories alert-history">'):]
    assert "acknowledged" in history and "8 of 10 stories negative (80%)" in history
    api = ann.get("/api/companies/ACME").json()
    assert api["name"] == "Acme <b>Corp</b>" and [s["url"] for s in api["stories"]] == [
        "https://copy.example/x", "https://news.example/a?x=1&y=2", None]
    assert [a["id"] for a in api["alerts"]] == ["spike:acme"] and sum(h["articles"] for h in api["sentiment"]) == 4


def test_unknown_company_is_a_404_page_and_a_404_answer(db, desk_settings):
    ann = signed_in(desk_settings, db, "ann")
    r = ann.get("/companies/NOPE%3Cscript%3E")
    assert r.status_code == 404 and "No such company." in r.text and "<script>" not in r.text.split("<main", 1)[1]
    assert ann.get("/api/companies/NOPE").status_code == 404
    assert ann.get("/companies/QUIET").status_code == 200  # in the master without news: a page all the same


@hypothesis_settings(max_examples=60, deadline=None)
@given(headline=st.text(max_size=80), url=st.text(max_size=60) | st.sampled_from(
    ["javascript:alert(1)", " javascript:x", "data:text/html,<b>", "https://ok.example/<x>", "//evil.example",
     "http:/nohost", "HTTPS://Fine.example/p?q=\"1\""]))
def test_any_headline_and_url_render_as_text_and_only_http_urls_become_links(headline, url):
    row = present.StoryRow(time=None, headline=headline, url=present.http_url(url), outlets=[headline],
                           outlet_count=1, copies=1, sentiment="negative", score=-0.5, toward=True)
    html = make_templates().get_template("_stories.html").render(stories=[row], name=headline, caption=headline)
    links = re.findall(r'<a href="([^"]*)"', html)
    assert len(links) == (1 if present.http_url(url) else 0)
    assert all(link.lower().startswith(("http://", "https://")) for link in links)
    tags = r"</?(div|table|caption|thead|tbody|tr|th|td|a|span)\b[^>]*>"
    assert "<" not in re.sub(tags, "", html)  # nothing of the text became markup


# -- watchlists -----------------------------------------------------------------------------------------
def test_a_private_watchlist_is_its_owners_alone_and_a_shared_one_its_creators_and_supervisors(db, desk_settings):
    ann, bob, sam = (signed_in(desk_settings, db, n) for n in ("ann", "bob", "sam"))
    assert post_form(ann, "/watchlists", name="Ann's <secret>").status_code == 303
    private = watchlist_id(db, "Ann's <secret>")
    assert post_form(ann, f"/watchlists/{private}/add", company_id="ACME").status_code == 303
    assert on_list(db, "Ann's <secret>") == ["ACME"]
    # bob cannot see it nor change it: the same answer as for a list that does not exist
    assert "secret" not in bob.get("/watchlists").text and private not in [w["id"] for w in
                                                                             bob.get("/api/watchlists").json()]
    for action, fields in [("add", {"company_id": "BETA"}), ("remove", {"company_id": "ACME"}), ("delete", {})]:
        r = post_form(bob, f"/watchlists/{private}/{action}", **fields)
        assert r.status_code == 404 and "No such watchlist." in r.text, action
    assert bob.get(f"/alerts?watchlist={private}").status_code == 404
    assert on_list(db, "Ann's <secret>") == ["ACME"]
    # no CSRF token: refused, nothing changed; a company not in the master: refused
    assert ann.post(f"/watchlists/{private}/add", data={"company_id": "BETA", "csrf_token": "forged"}).status_code == 403
    assert post_form(ann, f"/watchlists/{private}/add", company_id="NOPE").status_code == 422
    assert on_list(db, "Ann's <secret>") == ["ACME"]
    page = ann.get("/watchlists").text
    assert "Ann&#39;s &lt;secret&gt;" in page and "<secret>" not in page
    # shared: everyone sees it; bob may not change ann's, sam (a supervisor) may
    assert post_form(ann, "/watchlists", name="Desk", shared="on").status_code == 303
    shared = watchlist_id(db, "Desk")
    assert [w["shared"] for w in bob.get("/api/watchlists").json() if w["id"] == shared] == [True]
    assert post_form(bob, f"/watchlists/{shared}/add", company_id="BETA").status_code == 403
    assert post_form(sam, f"/watchlists/{shared}/add", company_id="BETA").status_code == 303
    r = post_form(ann, f"/watchlists/{shared}/add", company_id="ACME", from_company="ACME")
    assert r.status_code == 303 and r.headers["location"] == "/companies/ACME"
    assert on_list(db, "Desk") == ["ACME", "BETA"]
    assert post_form(ann, f"/watchlists/{private}/delete").status_code == 303
    assert on_list(db, "Ann's <secret>") == [] and "secret" not in ann.get("/watchlists").text


def test_a_watchlists_webhook_is_set_by_its_editors_to_http_urls_only_and_its_url_never_shown(db, desk_settings):
    ann, bob = signed_in(desk_settings, db, "ann"), signed_in(desk_settings, db, "bob")
    post_form(ann, "/watchlists", name="Hooked")
    wid = watchlist_id(db, "Hooked")
    secret = "https://hooks.example/services/T000/B000/s3cr3t"
    for url, fmt in [("javascript:alert(1)", "slack"), ("hooks.example/x", "slack"), (secret, "email")]:
        assert post_form(ann, f"/watchlists/{wid}/webhook", url=url, webhook_format=fmt).status_code == 422, url
    assert post_form(bob, f"/watchlists/{wid}/webhook", url=secret, webhook_format="slack").status_code == 404
    with db.connect() as conn:
        assert conn.execute(text("select webhook_url from watchlists where id = :id"), {"id": wid}).scalar() is None
    assert post_form(ann, f"/watchlists/{wid}/webhook", url=secret, webhook_format="teams").status_code == 303
    page = ann.get("/watchlists").text
    assert "go to a teams webhook at hooks.example." in page and "s3cr3t" not in page
    assert [w["webhook"] for w in ann.get("/api/watchlists").json()] == [{"host": "hooks.example", "format": "teams"}]
    assert post_form(ann, f"/watchlists/{wid}/webhook", url="", webhook_format="slack").status_code == 303
    with db.connect() as conn:
        row = conn.execute(text("select webhook_url, webhook_format from watchlists where id = :id"), {"id": wid}).first()
    assert tuple(row) == (None, None)


def test_the_alerts_page_shows_one_watchlists_companies_alone(db, desk_settings):
    add_alert(db, "spike:acme:1", "company:ACME")
    add_alert(db, "spike:beta:1", "company:BETA")
    add_alert(db, "spike:plain:1", "acme")  # a key of no linked company
    ann = signed_in(desk_settings, db, "ann")
    post_form(ann, "/watchlists", name="Acme only")
    acme_only = watchlist_id(db, "Acme only")
    post_form(ann, f"/watchlists/{acme_only}/add", company_id="ACME")
    post_form(ann, "/watchlists", name="Empty")

    def shown(page: str) -> set[str]:
        return {i for i in ("spike:acme:1", "spike:beta:1", "spike:plain:1") if f'id="alert-{present.dom_id(i)}"' in page}

    assert shown(ann.get("/alerts").text) == {"spike:acme:1", "spike:beta:1", "spike:plain:1"}
    assert shown(ann.get("/alerts?watchlist=").text) == {"spike:acme:1", "spike:beta:1", "spike:plain:1"}
    filtered = ann.get(f"/alerts?watchlist={acme_only}").text
    assert shown(filtered) == {"spike:acme:1"} and f"&amp;watchlist={acme_only}" in filtered  # tabs keep it
    assert shown(ann.get(f"/alerts?watchlist={watchlist_id(db, 'Empty')}").text) == set()
    assert ann.get("/alerts?watchlist=999999").status_code == 404
    assert ann.get("/alerts?watchlist=x").status_code == 404


def test_the_migration_adds_and_drops_the_watchlist_tables(engine):
    from alembic import command

    from infra.db import alembic_config

    url = engine.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(url), "0013")
    with engine.connect() as conn:
        assert conn.execute(text("select to_regclass('watchlists')")).scalar() is None
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        assert conn.execute(text("select to_regclass('watchlist_companies')")).scalar() == "watchlist_companies"
