"""The spike detector and story grouping on a real PostgreSQL, with fake models (named as such):
the acceptance scenarios (a reprint storm raises nothing, a genuine burst raises one alert with
its outlets, far-future timestamps change neither), replays at other batch sizes and arrival
orders that give the same alerts, idle partitions, late events and a restart mid-story.

The stream core's own work (parse, rows, one transaction, after-commit) is driven as
``agents/loop.py`` drives it, without the broker: what is under test is what the detector
decides from the stored rows.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from agents import backtest
from agents.backtest import COMPANIES, DAY, OUTLETS, VOCAB
from agents.alerts.spikes import SpikeDetector
from agents.news import NewsPipeline
from agents.pipeline import Received
from agents.sinks import Batch, PostgresSink
from infra import metrics
from infra.settings import Settings
from models.entities import Entity
from models.sentiment import Sentiment

PARTITIONS = 4
NEGATIVE_WORDS = set(backtest.NEGATIVE_WORDS)  # the scenarios' words and names are the backtest's


class FakeNewsAnalyzer:
    """Negative when the text holds a word from NEGATIVE_WORDS; a TICKER entity for each ``$XYZ`` in it
    (with its position) and no other entities (keys come from `tickers` and those)."""

    version = "fake-news-1"

    def analyze_texts(self, texts, side_by_side=True, headline_ends=None):
        out = []
        for t in texts:
            neg = bool(NEGATIVE_WORDS & set(t.lower().replace(",", " ").split()))
            scores = {"negative": 0.9 if neg else 0.05, "neutral": 0.05 if neg else 0.85, "positive": 0.05}
            if not neg:
                scores["positive"] = 0.1
            label = "negative" if neg else "neutral"
            tickers = [Entity(m.group(), "TICKER", m.start(), m.end(), 1.0) for m in re.finditer(r"\$[A-Z]{2,5}", t)]
            out.append((Sentiment(label, scores[label], scores), tickers))
        return out


def clear(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("truncate news_articles, entity_mentions, article_keys, entity_aliases, alerts, stories"))


class FrozenClock:
    """A monotonic clock that moves only when told (partition idleness)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(i: str, title: str, company: str, t: datetime, outlet: str, url: bool = True) -> dict:
    e = {"id": i, "title": title, "text": title + ".", "source": outlet, "published_at": t.isoformat(),
         "tickers": [company]}
    if url:
        e["url"] = f"https://news.example/{i}"
    return e


def calm_day(rng: random.Random, hours: int = 14, per_hour: int = 24) -> list[dict]:
    """Distinct stories over ten companies, about one in five negative, a few copies each."""
    events = []
    for n in range(hours * per_hour):
        t = DAY + timedelta(seconds=n * 3600 / per_hour)
        company = COMPANIES[n % len(COMPANIES)]
        words = rng.sample(VOCAB, 6)
        if rng.random() < 0.2:
            words[2] = rng.choice(sorted(NEGATIVE_WORDS))
        title = f"{company} " + " ".join(words)
        for copy in range(1 + (n % 3 == 0)):
            events.append(event(f"calm-{n:04d}-{copy}", title if not copy else f"UPDATE 1-{title} - Reuters",
                                company, t + timedelta(seconds=30 * copy), OUTLETS[(n + copy) % 6]))
    return events


def reprint_storm(start: datetime) -> list[dict]:
    """One mildly negative story reprinted 15 times by 15 outlets within 20 minutes."""
    base = "ACME warning on supply costs weighs on quarter outlook"
    variants = [base, f"UPDATE 1-{base}", f"BRIEF-{base}", base.upper(), f"{base} - Reuters", f"{base} | Bloomberg",
                base.lower(), f"UPDATE 2-{base} - Reuters", f"{base} (NYSE: ACME)", f"{base} $ACME"]
    return [event(f"storm-{k:02d}", variants[k % len(variants)], "ACME", start + timedelta(seconds=80 * k),
                  OUTLETS[k]) for k in range(15)]


def burst(start: datetime) -> list[dict]:
    """Twelve distinct negative stories about one company from eight outlets within 40 minutes."""
    titles = ["HRWL shares plunge as auditors refuse to sign accounts", "Regulator opens fraud probe into HRWL",
              "HRWL issues profit warning after orders slump", "HRWL chief executive resigns amid scandal",
              "HRWL credit rating cut to junk by agency", "HRWL announces layoffs across European depots",
              "Lenders fear HRWL loan breach after missed payment", "HRWL halts deliveries after warehouse fire",
              "Customers file lawsuit against HRWL over lost parcels", "HRWL bonds slide on default fears",
              "HRWL faces record fine for safety failures", "Analysts see HRWL quarterly loss doubling"]
    return [event(f"burst-{k:02d}", title, "HRWL", start + timedelta(seconds=200 * k), OUTLETS[k % 8])
            for k, title in enumerate(titles)]


def future(n: int) -> list[dict]:
    """Articles dated 2099 (a poisoned clock), one or more per partition."""
    return [event(f"future-{k:02d}", f"JADE " + " ".join(random.Random(k).sample(VOCAB, 6)), "JADE",
                  datetime(2099, 1, 1, tzinfo=UTC) + timedelta(minutes=k), OUTLETS[k % 6]) for k in range(n)]


def scenario(with_future: bool = False) -> list[dict]:
    rng = random.Random(16)
    events = calm_day(rng)
    events += reprint_storm(DAY + timedelta(hours=5))
    events += burst(DAY + timedelta(hours=9))
    events.sort(key=lambda e: (e["published_at"], e["id"]))
    if with_future:  # after the storm, before the burst: the burst must still be decided
        cut = next(i for i, e in enumerate(events) if e["published_at"] >= (DAY + timedelta(hours=7)).isoformat())
        events[cut:cut] = future(2 * PARTITIONS)
    return events


def partition_of(e: dict) -> int:
    return sum(e["id"].encode()) % PARTITIONS


class Replay:
    """Drives NewsPipeline as the agent loop does: build each event, one transaction per batch,
    then after_commit; the Kafka record time is the event's time plus a second (a broker that
    stamps records as they arrive), except that far-future events are stamped with the day's."""

    def __init__(self, engine, settings: Settings | None = None, clock=None, story_index=None):
        self.settings = settings or Settings()
        self.clock = clock or FrozenClock()
        self.detector = SpikeDetector(engine, self.settings, clock=self.clock)
        self.detector.assign(set(range(PARTITIONS)))
        self.pipeline = NewsPipeline(FakeNewsAnalyzer(), "fake-news-1", detector=self.detector, engine=engine,
                                     story_index=story_index, settings=self.settings)
        self.sink = PostgresSink(engine, "news")
        self.offsets = [0] * PARTITIONS
        self.alerts = []

    def record_time(self, e: dict) -> float:
        if "record_time" in e:  # a producer's own CreateTime
            return e["record_time"]
        t = datetime.fromisoformat(e["published_at"])
        return (t if t.year < 2090 else DAY + timedelta(hours=7)).timestamp() + 1

    def feed(self, events: list[dict], batch_size: int) -> None:
        for at in range(0, len(events), batch_size):
            batch = Batch(self.pipeline.parent, self.pipeline.children)
            built = []
            for e in events[at:at + batch_size]:
                p = partition_of(e)
                value = json.dumps({k: v for k, v in e.items() if k != "record_time"}).encode()
                m = Received("news", p, self.offsets[p], e["id"].encode(), value, self.record_time(e))
                self.offsets[p] += 1
                ev = self.pipeline.parse(m.value)
                b = self.pipeline.build(m, ev, self.pipeline.infer([ev])[0])
                for table, row in b.rows:
                    batch.add(table, row, m)
                built.append(b)
            assert self.sink.write(batch) == []
            self.alerts += self.pipeline.after_commit(built)


def by_partition(events: list[dict]) -> list[dict]:
    """Another order of arrival: every partition's events in turn (each partition still in its own order)."""
    return [e for p in range(PARTITIONS) for e in events if partition_of(e) == p]


def stored_alerts(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "select id, key, severity, status, opened_at, last_seen_at, closed_at, "
            "payload->'window'->>'stories', payload->'window'->>'negatives', payload->>'tail' "
            "from alerts order by id")).all()]


def test_storm_raises_nothing_and_a_burst_one_alert_with_its_outlets_even_after_2099(engine):
    for with_future in (False, True):
        clear(engine)
        future_before = metrics.FUTURE_TIMESTAMPS._value.get()
        replay = Replay(engine)
        replay.feed(scenario(with_future), 16)
        with engine.connect() as conn:
            alerts = conn.execute(text("select key, payload, summary from alerts")).all()
            storm_stories = conn.execute(text("select count(distinct story_id) from news_articles "
                                              "where id like 'storm-%'")).scalar()
            storm = conn.execute(text("select copies, jsonb_array_length(outlets) from stories where id = "
                                      "(select story_id from news_articles where id = 'storm-00')")).first()
        assert storm_stories == 1 and tuple(storm) == (15, 15)  # fifteen copies of one story, fifteen outlets
        assert [a.key for a in alerts] == ["ticker:HRWL"], [(a.key, a.summary) for a in alerts]
        payload = alerts[0].payload
        outlets = {o for s in payload["stories"] for o in s["outlets"]}
        assert len(outlets) >= 5 and payload["window"]["outlets"] >= 5
        assert payload["window"]["stories"] >= 5 and payload["tail"] <= Settings().alert_max_tail
        story = payload["stories"][0]
        assert {"headline", "outlets", "url", "time", "copies"} <= set(story)
        assert story["url"].startswith("https://news.example/burst-") and "HRWL" in story["headline"]
        # the payload is the episode's peak window, after the first: its baseline stops where the episode began
        with engine.connect() as conn:
            opened = conn.execute(text("select opened_at from alerts")).scalar()
        assert payload["window"]["end"] > opened.isoformat()
        assert payload["baseline"]["excludes_episode_from"] == (opened - timedelta(hours=1)).isoformat()
        # the episode closed within the day: no open-episode series left for Alertmanager
        assert 'sentinel_spike_alert_open{' not in metrics.render().decode()
        if with_future:
            assert metrics.FUTURE_TIMESTAMPS._value.get() - future_before == 2 * PARTITIONS
            assert replay.detector.watermark < DAY + timedelta(days=1)  # 2099 moved no watermark


def test_the_same_file_gives_the_same_alerts_at_any_batch_size_and_order(engine):
    events = scenario(with_future=True)
    results = []
    for order, batch_size in [(events, 1), (events, 64), (by_partition(events), 7), (events, 500)]:
        clear(engine)
        Replay(engine).feed(order, batch_size)
        results.append(stored_alerts(engine))
    assert results[0] and all(r == results[0] for r in results), results


def test_an_idle_partition_stops_holding_the_watermark_back(engine):
    clear(engine)
    clock = FrozenClock()
    replay = Replay(engine, clock=clock)
    quiet = [e for e in scenario() if partition_of(e) != 3]  # partition 3 never delivers anything
    replay.feed(quiet, 32)
    assert replay.detector.watermark is None and stored_alerts(engine) == []
    clock.now += Settings().alert_idle_timeout + 1
    probe = next(e for k in range(10) if partition_of(e := event(f"probe-{k}", "IONX board review", "IONX",
                                                                  DAY + timedelta(hours=14), "Outlet A")) != 3)
    replay.feed([probe], 1)  # partition 3 has been silent past the idle timeout: it holds nothing back now
    assert replay.detector.watermark is not None
    assert [a[1] for a in stored_alerts(engine)] == ["ticker:HRWL"]


def test_a_burst_followed_by_silence_alerts_on_the_timer_without_a_later_event(engine):
    """The wire goes quiet right after the burst: no event will ever make its windows final, so the
    worker's timer (``tick``) decides them once every partition has been idle for the idle timeout."""
    clear(engine)
    clock = FrozenClock()
    replay = Replay(engine, clock=clock)
    last = DAY + timedelta(hours=9, minutes=37)  # the burst's twelfth story is at 9:36:40; nothing comes after
    replay.feed([e for e in scenario() if e["published_at"] < last.isoformat()], 32)
    assert stored_alerts(engine) == []  # the grace still holds the burst's windows open
    assert replay.detector.tick() == []  # the partitions are not idle yet: the wire is merely between events
    clock.now += Settings().alert_idle_timeout + 1
    opened = replay.detector.tick()
    assert [a.key for a in opened] == ["ticker:HRWL"] and [a[1] for a in stored_alerts(engine)] == ["ticker:HRWL"]
    assert opened[0].opened_at <= last + timedelta(seconds=Settings().alert_hop)
    assert replay.detector.tick() == []  # evaluated once for this quiet spell
    # the early windows were not final: a later event in them is not late, and the rest of the day decides
    # them again without a second alert
    late = metrics.LATE_EVENTS._value.get()
    replay.feed([e for e in scenario() if e["published_at"] >= last.isoformat()], 32)
    assert metrics.LATE_EVENTS._value.get() == late
    assert [a[1] for a in stored_alerts(engine)] == ["ticker:HRWL"]


def test_a_record_time_in_2099_is_replaced_by_the_receive_time_and_moves_no_watermark(engine):
    """Articles without published_at whose Kafka record time says 2099, on every partition: counted as future
    times, stored, and the burst still decided as without them."""
    clear(engine)
    events = scenario()
    cut = next(i for i, e in enumerate(events) if e["published_at"] >= (DAY + timedelta(hours=7)).isoformat())
    poisoned = []
    for k in range(2 * PARTITIONS):
        e = event(f"stamped-{k:02d}", "JADE " + " ".join(random.Random(k).sample(VOCAB, 6)), "JADE", DAY, "Outlet A")
        del e["published_at"]
        e["record_time"] = datetime(2099, 1, 1, tzinfo=UTC).timestamp() + k
        poisoned.append(e)
    assert {partition_of(e) for e in poisoned} == set(range(PARTITIONS))
    events[cut:cut] = poisoned
    future_before = metrics.FUTURE_TIMESTAMPS._value.get()
    replay = Replay(engine)
    replay.feed(events, 16)
    assert metrics.FUTURE_TIMESTAMPS._value.get() - future_before == 2 * PARTITIONS
    assert replay.detector.watermark < DAY + timedelta(days=1)
    with engine.connect() as conn:
        times = conn.execute(text("select event_time from news_articles where id like 'stamped-%'")).scalars().all()
    assert len(times) == 2 * PARTITIONS and all(t.year < 2090 for t in times)  # the receive time stands in
    assert [a[1] for a in stored_alerts(engine)] == ["ticker:HRWL"]


def test_a_late_event_is_stored_counted_and_decides_nothing(engine):
    clear(engine)
    replay = Replay(engine)
    replay.feed(scenario(), 32)
    before = stored_alerts(engine)
    late = metrics.LATE_EVENTS._value.get()
    # six more negative HRWL stories, dated an hour after the calm day began: long final
    extra = [event(f"late-{k}", f"HRWL {w} scandal deepens", "HRWL", DAY + timedelta(hours=1, minutes=k), "Outlet Z")
             for k, w in enumerate(["plant", "fleet", "audit", "bonds", "office", "tender"])]
    replay.feed(extra, 6)
    assert metrics.LATE_EVENTS._value.get() - late == 6
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from news_articles where id like 'late-%'")).scalar() == 6
    assert stored_alerts(engine) == before


def test_a_restart_rebuilds_the_stories_from_the_database(engine):
    clear(engine)
    first = Replay(engine)
    storm = reprint_storm(DAY)
    first.feed(storm[:7], 7)
    second = Replay(engine)  # a new worker: its story index is loaded from the stories table
    assert len(second.pipeline.stories) == 1
    second.feed(storm[7:], 8)
    with engine.connect() as conn:
        assert conn.execute(text("select count(distinct story_id) from news_articles")).scalar() == 1
        assert conn.execute(text("select copies from stories")).scalar() == 15


def test_an_open_episode_is_exported_with_the_alerts_labels_until_it_closes(engine):
    clear(engine)
    replay = Replay(engine)
    events = scenario()
    replay.feed([e for e in events if e["published_at"] < (DAY + timedelta(hours=10, minutes=45)).isoformat()], 32)
    with engine.connect() as conn:
        key, sev, status = conn.execute(text("select key, severity, status from alerts")).one()
    assert status == "open"
    exported = metrics.render().decode()
    assert f'sentinel_spike_alert_open{{key="{key}",severity="{sev}"}} 1.0' in exported
    replay.feed([e for e in events if e["published_at"] >= (DAY + timedelta(hours=10, minutes=45)).isoformat()], 32)
    assert 'sentinel_spike_alert_open{' not in metrics.render().decode()


def test_the_market_share_of_an_episodes_window_excludes_the_episode(engine):
    """The key's baseline stops where its episode began; so does the market's share it is shrunk towards."""
    clear(engine)
    replay = Replay(engine)
    events = scenario()
    replay.feed([e for e in events if e["published_at"] < (DAY + timedelta(hours=10, minutes=45)).isoformat()], 32)
    with engine.connect() as conn:
        key, opened = conn.execute(text("select key, opened_at from alerts where status = 'open'")).one()
        s = replay.settings
        start = opened - timedelta(seconds=s.alert_window)  # the episode's first window starts here
        end = opened + timedelta(seconds=2 * s.alert_window)  # a later window: the burst lies before its start
        (w,) = replay.detector.windows(conn, [(key, end)], {key: start})
        stories = conn.execute(text("""
            select avg(k.is_negative::int) >= 0.5 from article_keys k
            where k.event_time >= :lo and k.event_time < :cut
            group by k.key, coalesce(k.story_id, k.article_id)"""),
            {"lo": end - timedelta(seconds=s.alert_window + s.alert_lookback), "cut": start}).scalars().all()
    assert w.baseline_until == start
    assert w.market_share == pytest.approx(sum(stories) / len(stories))  # nothing from the episode


def passing_mentions(start: datetime, where: str) -> list[dict]:
    """Twelve distinct negative stories about the sector that name HRWL in passing (``where="body"``:
    after the first sentence) or in the title (``where="title"``)."""
    subjects = ["Freight rates", "Parcel volumes", "Diesel costs", "Port delays", "Warehouse rents", "Air cargo",
                "Rail freight", "Trucking margins", "Courier strikes", "Container prices", "Fleet insurance",
                "Last-mile costs"]
    events = []
    for k, subject in enumerate(subjects):
        title = f"{subject} slump deepens as logistics demand weakens"
        text = "Analysts expect no recovery this quarter. Weaker names such as $HRWL could feel it."
        if where == "title":
            title = f"$HRWL hit as {subject.lower()} slump deepens"
        e = event(f"passing-{k:02d}", title, "HRWL", start + timedelta(seconds=200 * k), OUTLETS[k % 8])
        e.update(text=text, tickers=[])
        events.append(e)
    return events


def test_a_passing_mention_does_not_count_for_a_company_and_a_named_one_does(engine):
    for where, expected in (("body", []), ("title", ["ticker:HRWL"])):
        clear(engine)
        events = calm_day(random.Random(16)) + passing_mentions(DAY + timedelta(hours=9), where)
        events.sort(key=lambda e: (e["published_at"], e["id"]))
        Replay(engine).feed(events, 32)
        with engine.connect() as conn:
            counted = conn.execute(text("select count(*) from article_keys where article_id like 'passing-%'")).scalar()
        assert counted == (0 if where == "body" else 12)
        assert [a[1] for a in stored_alerts(engine)] == expected, where


def test_a_restarted_worker_replaying_the_day_and_an_article_from_1970_changes_no_alert(engine):
    clear(engine)
    events = scenario(with_future=True)
    Replay(engine).feed(events, 64)
    before = stored_alerts(engine)
    assert before
    again = Replay(engine)  # a restart: nothing acknowledged, the whole file comes again
    again.feed([event("old-1970", "ACME plunge probe", "ACME", datetime(1970, 1, 2, tzinfo=UTC), "Outlet A")]
               + events, 50)
    assert stored_alerts(engine) == before
    assert again.detector.decided_through == Replay(engine).detector.frontier(again.detector.watermark)


def test_two_workers_take_in_each_others_stories(engine):
    """Reprints land on every partition; with the partitions split over two workers, each worker takes in
    the stories the other founded, so the copies still make one story."""
    clear(engine)
    a, b = Replay(engine), Replay(engine)
    for worker in (a, b):
        worker.pipeline.story_refresh = 0  # take them in after every batch (the default is every 2 s)
    for k, e in enumerate(reprint_storm(DAY)):
        (a if k % 2 else b).feed([e], 1)
    with engine.connect() as conn:
        assert conn.execute(text("select count(distinct story_id) from news_articles")).scalar() == 1
        assert conn.execute(text("select copies from stories")).scalar() == 15
    # an edited copy (another hash) on the other worker joins once that worker has taken the story in
    b.feed([event("edit-0", "ACME profit warning hits shares", "ACME", DAY + timedelta(hours=1), "Outlet A")], 1)
    a.feed([event("other-0", "BOLT opens research office", "BOLT", DAY + timedelta(hours=1), "Outlet B")], 1)
    a.feed([event("edit-1", "UPDATE 1-ACME profit warning hits shares, analysts say", "ACME",
                  DAY + timedelta(hours=1, minutes=2), "Outlet C")], 1)
    with engine.connect() as conn:
        assert conn.execute(text("select count(distinct story_id) from news_articles where id like 'edit-%'")).scalar() == 1
