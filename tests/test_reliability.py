"""Faults on the real embedded stack: crashes, a database outage, a rebalance, a broker reset.

Each test checks the same promise: every valid event stored exactly once, nothing lost.
"""

import random
import time

import pytest

from agents.demo.feed import generate
from infra.embedded import EmbeddedBroker
from infra.harness import metric_total, rss_mib
from tests.helpers import Worker, news_values, produce, wait_until

pytestmark = pytest.mark.integration


def stored(services) -> int:
    return services.scalar("select count(*) from news_articles")


def assert_exactly_once(services, events: list[dict]) -> None:
    assert stored(services) == len(events)
    assert {r[0] for r in services.rows("select id from news_articles")} == {e["id"] for e in events}
    assert services.scalar("""select count(*) from (select article_id, start, "end", label, count(*) c
                              from entity_mentions group by 1, 2, 3, 4 having count(*) > 1) d""") == 0



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
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    try:
        produce(services.bootstrap, "news", news_values(events))
        wait_until(lambda: stored(services) >= 300, timeout=300, message="300 articles before the outage")
        rss_before = rss_mib(worker.process.pid)
        services.postgres.halt()
        outage_started = time.monotonic()
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
            services.postgres.resume()
        wait_until(lambda: stored(services) >= 2500, timeout=600, message="all 2,500 articles after the outage")
        after = worker.metrics()
    finally:
        worker.stop()
    print(f"events taken during the last 10 s of the outage: {consumed_end - consumed_mid:.0f}; "
          f"RSS {rss_before:.0f} MiB before, {rss_during:.0f} MiB at the end of the outage")
    assert consumed_end == consumed_mid, "the worker kept taking events while the database was down"
    assert consumed_end < 2500
    assert rss_during < 1.5 * rss_before
    assert metric_total(after, "sentinel_db_up") == 1
    assert metric_total(after, "sentinel_db_errors_total") >= 1
    assert "database unavailable" in worker.log()
    assert_exactly_once(services, events)


def test_a_second_worker_joins_and_leaves_mid_stream(services, tmp_path):
    events = generate(n=3000, burst_at=None, seed=33, prefix="rebalance")
    first = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
    second = None
    try:
        produce(services.bootstrap, "news", news_values(events))
        wait_until(lambda: stored(services) >= 400, timeout=300, message="400 articles before the join")
        second = Worker(services, tmp_path, SENTINEL_AGENTS="news").start()
        wait_until(lambda: metric_total(second.metrics(), "sentinel_events_consumed_total") >= 200, timeout=300,
                   message="the second worker takes part")
        second_consumed = metric_total(second.metrics(), "sentinel_events_consumed_total")
        assert second.stop() == 0
        second = None
        at_leave = stored(services)
        assert at_leave < 3000, "the stream ended before the second worker left; the test proves nothing"
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
    assert_exactly_once(services, events)
