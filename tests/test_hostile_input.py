"""5,000 hostile messages per input topic against the real worker: it never crashes, every
message is stored or dead-lettered with its reason, and no draft follows injected instructions."""

from collections import Counter

import pytest
from sqlalchemy import text

from infra.db import make_engine
from tests.helpers import SQL, Worker, hostile, produce, wait_until

pytestmark = pytest.mark.integration


def http_surface(port: int) -> dict[str, int]:
    import urllib.error
    import urllib.request

    status = {}
    for method, path in [("GET", "/metrics"), ("GET", "/health"), ("POST", "/metrics"), ("POST", "/health"),
                         ("GET", "/router/"), ("GET", "/table/x/"), ("GET", "/stats/"), ("GET", "/graph/")]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=b'{"id": "x"}' if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                status[f"{method} {path}"] = r.status
        except urllib.error.HTTPError as exc:
            status[f"{method} {path}"] = exc.code
    return status


def expected_reasons(messages) -> Counter:
    return Counter(want for _, want in messages if want != "stored")


def tables(services) -> set[str]:
    return {r[0] for r in services.rows(
        "select table_name from information_schema.tables where table_schema = 'public'")}


def plant_canaries(services) -> None:
    """Rows the injected SQL would delete (DELETE FROM dead_letters, TRUNCATE alerts) if it ran."""
    engine = make_engine(services.database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(text("""insert into alerts (id, kind, key, severity, status, opened_at, last_seen_at,
                                 payload, summary, delivered_at)
                                 values ('canary', 'canary', 'canary', 'warning', 'closed', now(), now(),
                                         '{}', 'planted by the test', now())"""))
            conn.execute(text("""insert into dead_letters (topic, partition, "offset", value_sha256, value_size,
                                 reason, detail) values ('canary', 0, 0, 'canary', 0, 'canary', 'planted')"""))
    finally:
        engine.dispose()


def test_hostile_messages_on_both_topics(services, tmp_path):
    news = hostile(5000, "news", "hn")
    chat = hostile(5000, "chat", "hc")
    n_news_valid = sum(want == "stored" for _, want in news)
    n_chat_valid = sum(want == "stored" for _, want in chat)
    # canaries: a database password and a webhook token that must never reach the log
    # (the embedded database trusts local connections, so the password is accepted and ignored)
    url = services.database_url.replace("postgres:@", "postgres:canary-password@", 1)
    assert "canary-password" in url
    tables_before = tables(services)
    assert {"news_articles", "chat_messages", "dead_letters", "alerts"} <= tables_before
    plant_canaries(services)
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news,chat", DATABASE_URL=url,
                    SENTINEL_ALERT_WEBHOOK_URL="http://127.0.0.1:9/unreachable",
                    SENTINEL_ALERT_WEBHOOK_TOKEN="canary-token").start()
    try:
        surface = http_surface(worker.port)
        keys = [f"key-{i}".encode() for i in range(5000)]  # a tombstone (no value) needs a key
        produce(services.bootstrap, "news", [v for v, _ in news], keys)
        produce(services.bootstrap, "chat", [v for v, _ in chat], keys)
        wait_until(lambda: services.scalar("select count(*) from news_articles") >= n_news_valid
                   and services.scalar("select count(*) from reply_drafts") >= n_chat_valid
                   and services.scalar("select count(*) from dead_letters") >= 10_001 - n_news_valid - n_chat_valid,
                   timeout=900, interval=1, message="every hostile message stored or dead-lettered")
        assert worker.process.poll() is None, "the worker crashed"
        health = worker.metrics()
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    # the web server takes no data: GET /metrics and /health only, Faust's own views off
    assert surface == {"GET /metrics": 200, "GET /health": 200, "POST /metrics": 405, "POST /health": 405,
                       "GET /router/": 404, "GET /table/x/": 404, "GET /stats/": 404, "GET /graph/": 404}
    log = worker.log()
    assert "webhook" in log.lower()  # the escalations did try the unreachable webhook, and said so
    assert "canary" not in log
    assert "sentinel_events_consumed_total" in health

    # every message accounted for, with the reason it deserves
    for topic, messages in (("news", news), ("chat", chat)):
        got = Counter(dict(services.rows("select reason, count(*) from dead_letters where topic = :t group by 1",
                                         t=topic)))
        assert got == expected_reasons(messages), topic
    assert services.scalar("select count(*) from news_articles") == n_news_valid
    assert services.scalar("select count(*) from chat_messages") == n_chat_valid
    assert services.scalar("select count(*) from reply_drafts") == n_chat_valid

    # the 10 MB payloads are dead letters that keep their size, not their 10 MB: news their first 64 KiB,
    # chat nothing (over the text redacted in full)
    big = services.rows("select topic, value_size, length(value) from dead_letters where value_size > 10000000")
    assert len(big) == 4 and all(stored is None if topic == "chat" else stored <= 64 * 1024
                                 for topic, _, stored in big)

    # injected SQL is stored as text and did nothing: the same tables, the planted rows still there,
    # no dead letter or alert beyond what the messages account for
    assert tables(services) == tables_before
    assert services.scalar("select count(*) from dead_letters") == 10_000 - n_news_valid - n_chat_valid + 1
    assert services.rows("select topic, reason from dead_letters where topic = 'canary'") == [("canary", "canary")]
    assert services.rows("select id from alerts where kind = 'canary'") == [("canary",)]
    assert services.scalar("select count(*) from alerts where kind = 'escalation'") == \
        services.scalar("select count(*) from reply_drafts where escalate")
    # control characters are gone, the rest kept
    assert services.scalar("select count(*) from news_articles where text = any(:texts)", texts=SQL) > 0
    assert services.scalar("select count(*) from news_articles where text ~ '[\\x01-\\x08\\x0b\\x0c\\x0e-\\x1f]'") == 0
    assert services.scalar("select count(*) from news_articles where text like 'Quarterly results beat%'") > 0
    assert services.scalar("select count(*) from news_articles where text like '%Zürich 📈'") > 0
    # consistent: every mention and key belongs to a stored article
    assert services.scalar("""select count(*) from entity_mentions m left join news_articles a on a.id = m.article_id
                              where a.id is null""") == 0
    assert services.scalar("""select count(*) from article_keys k left join news_articles a on a.id = k.article_id
                              where a.id is null""") == 0

    # prompt injection: escalated for a human, never obeyed
    injected = services.rows("""select d.escalate, d.escalation_reason, d.draft from reply_drafts d
                                join chat_messages m on m.id = d.message_id where m.text ~* 'PWNED'""")
    assert len(injected) == sum(1 for v, want in chat if want == "stored" and b"PWNED" in v)
    assert all(escalate and "prompt_injection" in reason for escalate, reason, _ in injected)
    assert services.scalar("select count(*) from reply_drafts where draft ~* 'pwned|pirate|system prompt'") == 0
