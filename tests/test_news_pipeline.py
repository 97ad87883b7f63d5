"""The news pipeline end to end: real worker, embedded Tansu broker, embedded PostgreSQL."""

import json
import random

import pytest

from agents.demo.feed import generate
from tests.helpers import (
    Worker,
    malformed_news,
    news_values,
    produce,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_valid_and_malformed_events_end_to_end(services, tmp_path):
    valid = generate(n=2000, burst_at=None, seed=11, prefix="e2e")
    bad = malformed_news(100)
    values = news_values(valid) + [v for v, _ in bad]
    random.Random(5).shuffle(values)
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    try:
        produce(services.bootstrap, "news", values)
        wait_until(lambda: services.scalar("select count(*) from news_articles") >= 2000
                   and services.scalar("select count(*) from dead_letters") >= 100, timeout=600,
                   message="2,000 articles and 100 dead letters")
        enriched = read_topic(services.bootstrap, "news.enriched", 2000)
        metrics = worker.metrics()
    finally:
        worker.stop()

    assert services.scalar("select count(*) from news_articles") == 2000
    stored = {r[0] for r in services.rows("select id from news_articles")}
    assert stored == {e["id"] for e in valid}
    # every article has its sentiment, and the company of its headline among its entities
    assert services.scalar("select count(*) from news_articles where sentiment_label is null") == 0
    with_entities = services.scalar("select count(distinct article_id) from entity_mentions")
    assert with_entities >= 1900
    tickers = services.scalar("select count(*) from entity_mentions where label = 'TICKER'")
    assert tickers > 0

    assert services.scalar("select count(*) from dead_letters") == 100
    reasons = dict(services.rows("select reason, count(*) from dead_letters group by reason"))
    expected = {}
    for _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert reasons == expected
    assert services.scalar("select count(*) from dead_letters where value is null or detail = ''") == 0

    ids = [json.loads(r.value)["id"] for r in enriched]
    assert len(ids) == 2000 and set(ids) == stored
    one = json.loads(enriched[0].value)
    assert set(one["sentiment"]) == {"label", "score", "scores"} and isinstance(one["entities"], list)

    dead = read_topic(services.bootstrap, "deadletter", 100)
    assert len(dead) == 100
    assert {json.loads(r.value)["reason"] for r in dead} == set(expected)
    assert 'sentinel_events_consumed_total{topic="news"} 2100.0' in metrics


# The crash test (SIGKILL mid-stream, nothing lost or duplicated) is the three-kill test in
# tests/test_reliability.py.
