"""Faults on the real embedded stack: crashes, a database outage, a rebalance, a broker reset.

Each test checks the same promise: every valid event stored exactly once, nothing lost.
"""

import json
import random
import threading
import time
from datetime import datetime, timezone

import pytest
from kafka import KafkaAdminClient

from agents.demo.feed import generate
from agents.news import COMPANY_PREFIX, lead_end
from infra.embedded import EmbeddedBroker
from infra.harness import metric_total, read_topic, rss_mib
from models.entity_keys import NOT_COMPANIES, entity_key
from schemas.events import NewsEvent
from tests.helpers import Worker, news_values, produce, wait_until

pytestmark = pytest.mark.integration


def stored(services) -> int:
    return services.scalar("select count(*) from news_articles")


def mentions_by_article(services) -> dict[str, set[tuple]]:
    out: dict[str, set[tuple]] = {}
    for article_id, start, end, label, text in services.rows(
            'select article_id, start, "end", label, text from entity_mentions'):
        out.setdefault(article_id, set()).add((start, end, label, text))
    return out


def first_records(services, n: int) -> dict[str, dict]:
    """Each article's first record on ``news.enriched`` (its partition is chosen by the id)."""
    first: dict[str, dict] = {}
    for record in read_topic(services.bootstrap, "news.enriched", n):
        value = json.loads(record.value)
        first.setdefault(value["id"], value)
    return first


def keys_of_one_pass(keys: set[str], tickers: set[str], orgs: set[str], aliases: dict[str, str],
                     linked: set[str] = frozenset()) -> bool:
    """Whether an article's key rows are what one pass over its lead's mentions gives: every ticker, every
    linked company (``company:<id>``), and each other company once, under its name or under its joined ticker
    (a join may be learned between passes)."""
    if not tickers <= keys or not linked <= keys:
        return False
    rest = keys - tickers - linked
    allowed = orgs | {aliases[o] for o in orgs if o in aliases}
    if not rest <= allowed:
        return False
    for org in orgs:
        if org not in keys and aliases.get(org) not in keys:
            return False
        if org in rest and aliases.get(org) in rest:  # the company counted twice: rows of two passes
            return False
    return True


def assert_exactly_once(services, events: list[dict], enriched: bool = True) -> None:
    """Every event stored once, and every stored article's children from exactly one model pass.

    Child rows are keyed by (article, span, label), so a replay that gives the same spans cannot
    duplicate them; a replay under another model version or batch shape that gives other spans would
    attach extra rows to an article stored before. Mentions must therefore equal the entities of the
    article's first ``news.enriched`` record (one pass), and its keys what one pass over them gives.
    ``enriched=False`` when the topic is gone (broker reset).
    """
    assert stored(services) == len(events)
    assert {r[0] for r in services.rows("select id from news_articles")} == {e["id"] for e in events}
    mentions = mentions_by_article(services)
    if enriched:
        first = first_records(services, len(events))
        assert set(first) == {e["id"] for e in events}
        mismatched = [i for i, record in first.items()
                      if mentions.get(i, set()) != {(e["start"], e["end"], e["label"], e["text"])
                                                    for e in record["entities"]}]
        assert not mismatched, f"{len(mismatched)} articles' mentions are not one pass, e.g. {mismatched[:3]}"
    keys: dict[str, set[str]] = {}
    for article_id, key in services.rows("select article_id, key from article_keys"):
        keys.setdefault(article_id, set()).add(key)
    aliases = dict(services.rows("select alias, key from entity_aliases"))
    mention_keys = {(r.article_id, r.start, r.label): r.entity_key for r in services.rows(
        "select article_id, start, label, entity_key from entity_mentions")}
    bad = []
    for e in events:
        lead = lead_end(NewsEvent.model_validate(e))  # a mention after the lead is no key (agents/news.py)
        spans = {m for m in mentions.get(e["id"], set()) if m[0] < lead}
        linked = {mention_keys[(e["id"], start, label)] for start, _, label, _ in spans
                  if mention_keys[(e["id"], start, label)].startswith(COMPANY_PREFIX)}
        unlinked = {m for m in spans if not mention_keys[(e["id"], m[0], m[2])].startswith(COMPANY_PREFIX)}
        tags = {entity_key(t, "TICKER") for t in e.get("tickers") or []}
        tickers = {t for t in tags if COMPANY_PREFIX + t.split(":", 1)[1] not in keys.get(e["id"], set())}
        tickers |= {entity_key(text, "TICKER") for _, _, label, text in unlinked if label == "TICKER"}
        orgs = {entity_key(text, "ORG") for _, _, label, text in unlinked if label == "ORG"} - NOT_COMPANIES
        if not keys_of_one_pass(keys.get(e["id"], set()), tickers, orgs, aliases, linked):
            bad.append((e["id"], sorted(keys.get(e["id"], set())), sorted(tickers), sorted(orgs), sorted(linked)))
    assert not bad, f"{len(bad)} articles' keys are not one pass, e.g. {bad[:3]}"


def committed_offsets(admin, group: str = "sentinel") -> dict[int, int]:
    """The consumer group's committed offsets on ``news`` (the group is the Faust app id)."""
    offsets = admin.list_group_offsets({group: None})[group]
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == "news" and meta.offset >= 0}


def stored_ends(services, before: datetime | None = None) -> dict[int, int]:
    """Per news partition, the highest stored kafka_offset + 1 (of the rows written before ``before``)."""
    return dict(services.rows("""select kafka_partition, max(kafka_offset) + 1 from news_articles
                                 where processed_at < coalesce(cast(:t as timestamptz), 'infinity') group by 1""",
                              t=before))


def test_three_sigkills_at_random_points_lose_and_duplicate_nothing(services, tmp_path):
    events = generate(n=5000, burst_at=None, seed=31, prefix="kill")
    produce(services.bootstrap, "news", news_values(events))
    rng = random.Random(7)
    kills = []
    for round_no in range(3):
        worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
        target = stored(services) + rng.randint(200, 900)
        wait_until(lambda target=target: stored(services) >= target, timeout=600, interval=0.1,
                   message=f"kill {round_no + 1} at {target} articles")
        worker.kill()
        kills.append(stored(services))
    assert kills[-1] < 5000, "the stream ended before the third kill; the test proves nothing"
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    try:
        wait_until(lambda: stored(services) >= 5000, timeout=900, message="all 5,000 articles")
        time.sleep(3)  # anything replayed after the last commit would land now
    finally:
        worker.stop()
    print(f"articles stored at the three kills: {kills}")
    assert_exactly_once(services, events)


def test_database_outage_pauses_consumption_and_resumes_by_itself(services, tmp_path):
    events = generate(n=2500, burst_at=None, seed=32, prefix="outage")
    admin = KafkaAdminClient(bootstrap_servers=services.bootstrap)
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    try:
        produce(services.bootstrap, "news", news_values(events))
        wait_until(lambda: stored(services) >= 300, timeout=300, message="300 articles before the outage")
        rss_before = rss_mib(worker.process.pid)
        services.postgres.halt()
        outage_started = time.monotonic()
        # Faust's real acknowledgement and commit: sample the group's committed offsets all through the outage
        samples: list[dict[int, int]] = []
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.5):
                samples.append(committed_offsets(admin))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            wait_until(lambda: metric_total(worker.metrics(), "sentinel_db_up") == 0, timeout=15,
                       message="sentinel_db_up = 0 during the outage")
            time.sleep(5)  # the batches in flight stop; consumption pauses
            consumed_mid = metric_total(worker.metrics(), "sentinel_events_consumed_total")
            time.sleep(15 - (time.monotonic() - outage_started))
            consumed_end = metric_total(worker.metrics(), "sentinel_events_consumed_total")
            rss_during = rss_mib(worker.process.pid)
            assert worker.process.poll() is None, "the worker died during the outage"
        finally:
            sampling.set()
            sampler.join()
            resumed_at = datetime.now(timezone.utc)
            services.postgres.resume()
        wait_until(lambda: stored(services) >= 2500, timeout=600, message="all 2,500 articles after the outage")
        # and the offsets do advance: to the end of every partition once everything is stored
        wait_until(lambda: committed_offsets(admin) == stored_ends(services), timeout=60,
                   message="committed offsets at the end of the stored events")
        after = worker.metrics()
    finally:
        worker.stop()
        admin.close()
    print(f"events taken during the last 10 s of the outage: {consumed_end - consumed_mid:.0f}; "
          f"RSS {rss_before:.0f} MiB before, {rss_during:.0f} MiB at the end of the outage")
    assert consumed_end == consumed_mid, "the worker kept taking events while the database was down"
    assert len(samples) >= 10 and any(samples), "no committed offsets sampled during the outage"
    ends_at_outage = stored_ends(services, before=resumed_at)  # nothing can be written while the server is down
    passed = [(p, offset, ends_at_outage.get(p, 0)) for sample in samples for p, offset in sample.items()
              if offset > ends_at_outage.get(p, 0)]
    assert not passed, f"committed offsets passed unstored events during the outage: {passed[:5]}"
    assert consumed_end < 2500
    assert rss_during < 1.5 * rss_before
    assert metric_total(after, "sentinel_db_up") == 1
    assert metric_total(after, "sentinel_db_errors_total") >= 1
    assert "database unavailable" in worker.log()
    assert_exactly_once(services, events)


def test_a_second_worker_joins_and_leaves_mid_stream(services, tmp_path):
    """Events keep arriving while a second worker joins, takes part and leaves: the stream is produced in
    thirds (before the join, once it has partitions, after it left), so the rebalances fall mid-stream
    however fast the models are."""
    events = generate(n=3000, burst_at=None, seed=33, prefix="rebalance")
    values = news_values(events)
    first = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    second = None
    try:
        produce(services.bootstrap, "news", values[:1000])
        wait_until(lambda: stored(services) >= 400, timeout=300, message="400 articles before the join")
        second = Worker(services, tmp_path, SENTINEL_AGENTS="news").start().wait_assigned(timeout=300)
        produce(services.bootstrap, "news", values[1000:2000])
        wait_until(lambda: metric_total(second.metrics(), "sentinel_events_consumed_total") >= 200, timeout=300,
                   message="the second worker takes part")
        second_consumed = metric_total(second.metrics(), "sentinel_events_consumed_total")
        assert second.stop() == 0
        second = None
        at_leave = stored(services)
        produce(services.bootstrap, "news", values[2000:])
        wait_until(lambda: stored(services) >= 3000, timeout=600, message="all 3,000 articles after the leave")
        time.sleep(3)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    print(f"the second worker took {second_consumed:.0f} events; {at_leave} articles stored when it left")
    assert_exactly_once(services, events)


def test_worker_detects_a_reset_broker_and_exits_with_a_clear_message(services, tmp_path):
    events = generate(n=200, burst_at=None, seed=34, prefix="reset")
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    try:
        produce(services.bootstrap, "news", news_values(events))
        wait_until(lambda: stored(services) >= 200, timeout=300, message="200 articles before the reset")
        port = services.broker.port
        services.broker.stop()  # memory-only: the restarted broker is a new, empty cluster
        services.broker = EmbeddedBroker(port=port, log_file=tmp_path / "tansu-2.log").start()
        wait_until(lambda: worker.process.poll() is not None, timeout=90, message="the worker to exit")
    finally:
        worker.stop()
    assert worker.process.returncode != 0
    assert "Kafka cluster was reset" in worker.log()
    assert_exactly_once(services, events, enriched=False)  # the reset broker lost news.enriched
