"""Spike alerts on the real stack: scenario, control and restart, replayed fast on event time."""

import json
from datetime import datetime, timedelta

import pytest

from agents.demo.feed import BURST_COMPANY, generate
from infra.settings import Settings
from tests.helpers import Worker, news_values, produce, read_topic, wait_until

pytestmark = pytest.mark.integration
HRWL = "company:" + BURST_COMPANY[1]  # the demo universe (agents/demo/companies.csv) links every form of the name


def stream(burst: bool, prefix: str, n: int = 3000) -> list[dict]:
    # 3,000 calm headlines over 24 companies, 12 s apart in event time (10 hours);
    # the burst: 30 bad headlines about one company, 40 s apart, from the 1,500th on. The restart tests stop
    # 500 headlines (1.7 hours) after it: what they check happens during the burst and just after.
    return generate(n=n, seed=31, burst_at=1500 if burst else None, burst_size=30, spacing_s=12.0,
                    burst_spacing_s=40.0, prefix=prefix)


def burst_start(events: list[dict]) -> datetime:
    first = next(e for e in events if e["id"].endswith("b"))
    return datetime.fromisoformat(first["published_at"])


def run(services, tmp_path, events, kill_during_burst=False):
    from agents.companies import import_demo

    import_demo(services.database_url)  # as `sentinel demo` does before its worker starts
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    produce(services.bootstrap, "news", news_values(events))
    if kill_during_burst:
        burst_ids = [e["id"] for e in events if e["id"].endswith("b")]
        wait_until(lambda: services.scalar("select count(*) from news_articles where id = any(:ids)",
                                           ids=burst_ids) >= 5, timeout=600, message="burst under way")
        worker.kill()
        assert services.scalar("select count(*) from news_articles") < len(events)
        worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    try:
        wait_until(lambda: services.scalar("select count(*) from news_articles") >= len(events), timeout=900,
                   message=f"{len(events)} articles stored")
    finally:
        worker.stop()
    alerts = services.rows("select id, key, severity, opened_at, payload, summary from alerts order by opened_at")
    if len(alerts) != 1:  # say what the windows held, to make a failure readable
        print(services.rows(f"""select date_trunc('hour', event_time) h, count(*), sum(is_negative::int)
                               from article_keys where key = '{HRWL}' group by 1 order by 1"""))
        print(services.rows("select sentiment_label, count(*) from news_articles group by 1"))
    return alerts


def assert_one_burst_alert(alerts, events):
    assert [a.key for a in alerts] == [HRWL], f"alerts: {[(a.key, a.payload['window']) for a in alerts]}"
    alert = alerts[0]
    window = timedelta(seconds=Settings().alert_window)
    start = burst_start(events)
    assert start <= alert.opened_at <= start + 2 * window, (start, alert.opened_at)
    payload = alert.payload
    assert payload["key"] == HRWL
    assert payload["company"] == {"id": "HRWL", "name": BURST_COMPANY[0], "ticker": "HRWL"}
    assert f"stories about {BURST_COMPANY[0]} negative" in alert.summary  # the name, not the key
    assert payload["window"]["negatives"] >= Settings().alert_min_mentions
    assert payload["baseline"]["mentions"] > 0
    tops = payload["top_headlines"]
    assert tops and all(BURST_COMPANY[0] in t["text"] for t in tops)


def test_burst_raises_exactly_one_alert_for_that_company(services, tmp_path):
    events = stream(True, "scn")
    alerts = run(services, tmp_path, events)
    assert_one_burst_alert(alerts, events)
    on_topic = [json.loads(r.value) for r in read_topic(services.bootstrap, "alerts", 1, timeout=20)]
    assert [a["key"] for a in on_topic] == [HRWL]
    assert {"id", "kind", "key", "severity", "opened_at", "payload"} <= set(on_topic[0])


def test_calm_stream_raises_no_alert(services, tmp_path):
    alerts = run(services, tmp_path, stream(False, "calm"))
    assert alerts == []


def test_restart_during_burst_still_one_alert(services, tmp_path):
    events = stream(True, "rst", n=2000)
    alerts = run(services, tmp_path, events, kill_during_burst=True)
    assert_one_burst_alert(alerts, events)


def test_an_alert_survives_a_crash_between_its_commit_and_its_produce(services, tmp_path):
    """The failpoint exits the worker right after the alert's transaction, before anything is produced:
    the restarted worker delivers that alert (the outbox), and no second episode is opened."""
    from agents.companies import import_demo

    import_demo(services.database_url)  # as `sentinel demo` does before its worker starts
    events = stream(True, "obx", n=2000)
    crashing = Worker(services, tmp_path, SENTINEL_AGENTS="news", SENTINEL_FAILPOINT="alert_stored").start()
    produce(services.bootstrap, "news", news_values(events))
    wait_until(lambda: crashing.process.poll() is not None, timeout=600, message="the worker to hit its failpoint")
    assert crashing.process.returncode == 86, crashing.log()[-3000:]
    stored = services.rows("select id, delivered_at from alerts")
    assert len(stored) == 1 and stored[0].delivered_at is None
    assert read_topic(services.bootstrap, "alerts", 1, timeout=5) == []
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news", SENTINEL_ALERT_REDELIVER_AFTER="2").start()
    try:
        wait_until(lambda: services.scalar("select count(*) from news_articles") >= len(events)
                   and services.scalar("select count(*) from alerts where delivered_at is null") == 0,
                   timeout=900, message="every article stored and the alert delivered")
    finally:
        worker.stop()
    alerts = services.rows("select id, key, severity, opened_at, payload, summary from alerts order by opened_at")
    assert_one_burst_alert(alerts, events)
    on_topic = [json.loads(r.value) for r in read_topic(services.bootstrap, "alerts", 1, timeout=20)]
    assert on_topic and {a["id"] for a in on_topic} == {stored[0].id}
