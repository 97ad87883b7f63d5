"""The backtest (``agents/backtest.py``) on a real PostgreSQL, with events that carry their own
sentiment (no model is loaded; one case reads a few lines with a fake analyzer, named as such)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from agents import backtest as bt
from infra.db import make_engine
from infra.embedded import EmbeddedPostgres
from infra.settings import Settings
from models.sentiment import Sentiment

DAY = bt.DAY


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """Settings whose DATABASE_URL is a real PostgreSQL: each backtest makes (and drops) its own schema there."""
    postgres = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata", delete_on_stop=True).start()
    yield Settings().model_copy(update={"database_url": postgres.url})
    postgres.stop()


def write(path, events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def schemas(url: str) -> list[str]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "select nspname from pg_namespace where nspname like 'sentinel_backtest_%'")).scalars())
    finally:
        engine.dispose()


def test_the_backtest_finds_the_burst_and_not_the_reprint_storm(settings, tmp_path):
    events = bt.calm(random.Random(16)) + bt.storm(DAY + timedelta(hours=5)) + bt.burst(DAY + timedelta(hours=9))
    history = write(tmp_path / "day.jsonl", sorted(events, key=lambda e: (e["received_at"], e["id"])))
    result = bt.backtest(history, settings=settings, show_progress=False)
    assert result.from_file == len(events) and result.from_models == 0
    assert [a.key for a in result.alerts] == ["ticker:HRWL"], bt.report(result, "day")
    alert = result.alerts[0]
    # the first window to alert ends at 09:30; its first negative story is the burst's first, at 09:00
    assert alert.at == DAY + timedelta(hours=9, minutes=30) and alert.first_negative == DAY + timedelta(hours=9)
    assert alert.lead_s == 1800 and alert.outlets >= 5
    assert "ticker:HRWL:" in bt.report(result, "day") and "lead 30m" in bt.report(result, "day")
    assert schemas(settings.database_url) == []  # its schema is gone


class FakeNewsAnalyzer:
    """Every text neutral, no entities: for the lines without a sentiment of their own."""

    version = "fake-news-1"

    def __init__(self):
        self.read = []

    def analyze_texts(self, texts, side_by_side=True, headline_ends=None):
        self.read += texts
        return [(Sentiment("neutral", 0.9, {"negative": 0.05, "neutral": 0.9, "positive": 0.05}), []) for _ in texts]


def test_precision_and_recall_against_labels_worked_out_by_hand(settings, tmp_path):
    """HRWL's burst is labelled (a hit), GRID's is not (a false alarm), ACME's reprint storm is labelled
    but raises nothing (a miss): 2 alerts, 1 hit, 1 false alarm, 2 episodes, 1 miss; precision 1/2,
    recall 1/2. HRWL's lead is from its labelled start (08:50) to its alert (09:30): 40 minutes."""
    events = (bt.calm(random.Random(16)) + bt.storm(DAY + timedelta(hours=5))
              + bt.burst(DAY + timedelta(hours=9)) + bt.burst(DAY + timedelta(hours=12), "GRID"))
    unread = [e for e in events if e["id"].startswith("calm-") and e["id"].endswith("00-0")]
    for e in unread:  # these lines carry no sentiment: the (fake) models read them
        del e["sentiment"]
    history = write(tmp_path / "day.jsonl", sorted(events, key=lambda e: (e["received_at"], e["id"])))
    labels = write(tmp_path / "labels.jsonl", [
        {"key": "HRWL", "start": "2026-03-02T08:50:00+00:00", "end": "2026-03-02T11:00:00+00:00"},
        {"key": "ticker:ACME", "start": "2026-03-02T05:00:00Z", "end": "2026-03-02T06:00:00Z"}])
    analyzer = FakeNewsAnalyzer()
    result = bt.backtest(history, labels, settings=settings, show_progress=False, analyzer_factory=lambda: analyzer)
    assert result.from_models == len(unread) == len(analyzer.read) and result.model_version == "fake-news-1"
    assert [(a.key, a.episode is not None) for a in result.alerts] == [("ticker:HRWL", True), ("ticker:GRID", False)]
    assert (result.hits, result.false_alarms, len(result.misses)) == (1, 1, 1)
    assert result.misses[0].key == "ticker:ACME"
    assert result.precision == 0.5 and result.recall == 0.5
    assert result.alerts[0].lead_s == 40 * 60
    out = result.as_dict()
    assert out["precision"] == 0.5 and out["false_alarms"] == 1 and out["sentiment_from_models"] == len(unread)


@pytest.mark.parametrize("partitions", [3, 4])
def test_the_partition_is_the_producers(partitions):
    from kafka.partitioner.default import DefaultPartitioner

    class FakeCluster:
        """The metadata the producer's partitioner asks for: one topic of ``partitions`` partitions."""

        def topics(self):
            return {"news"}

        def partitions_for_topic(self, topic):
            return set(range(partitions))

        available_partitions_for_topic = partitions_for_topic

    chosen = [DefaultPartitioner().partition("news", None, f"article-{k}".encode(), None, None, FakeCluster())
              for k in range(200)]
    assert [bt.partition_of(f"article-{k}".encode(), partitions) for k in range(200)] == chosen
    assert set(chosen) == set(range(partitions))


@pytest.mark.parametrize("lines, expected", [
    (['{"id": "a", "title": "ACME fine", "sentiment": "negative"}', '{"id": "b", "title": '],
     "bad.jsonl line 2 is not a news event: invalid_json"),
    (['{"id": "a", "title": "ACME fine", "sentiment": "negative"}', "", '{"id": "c", "title": "x", '
      '"sentiment": "angry\\u001b[31m"}'], "bad.jsonl line 3: sentiment label 'angry?[31m' is not one of"),
    (['{"title": "no id"}'], "bad.jsonl line 1 is not a news event: missing_field"),
    (['{"id": "d", "title": "x", "received_at": "yesterday"}'], "bad.jsonl line 1: received_at 'yesterday' is not"),
])
def test_a_malformed_line_is_one_line_that_names_it(tmp_path, lines, expected):
    from agents.cli import app

    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(bt.BacktestError, match="^" + expected.replace("[", r"\[").replace("?", r"\?")):
        bt.read_history(path)
    run = CliRunner().invoke(app, ["backtest", str(path)])  # the command as registered
    assert run.exit_code == 2
    assert "bad.jsonl line" in run.output and "\x1b" not in run.output
    assert run.output.startswith("error: ") and len(run.output.strip().splitlines()) == 2  # the error, what to do


def test_a_bad_label_names_its_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"key": "HRWL", "start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"}\n'
                    '{"key": "HRWL", "start": "2026-03-02T09:00:00Z", "end": "2026-03-01T10:00:00Z"}\n')
    with pytest.raises(bt.BacktestError, match="^labels.jsonl line 2 is not a label: end is before start$"):
        bt.read_labels(path)


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    history = write(tmp_path / "day.jsonl", bt.burst(DAY))
    unreachable = Settings().model_copy(update={"database_url": "postgresql://desk:s3cret@127.0.0.1:1/sentinel"})
    with pytest.raises(bt.BacktestError, match="^cannot use the database at ") as caught:
        bt.backtest(history, settings=unreachable, show_progress=False)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_far_future_dates_and_an_idle_partition_still_let_the_burst_through(settings, tmp_path):
    """The arrival clock: 2099 articles arrive at 07:00 (their received_at) and move no watermark; a partition
    that never delivers stops holding the watermark back after the idle timeout of arrival time."""
    built = bt.scenarios()
    for name in ("far_future", "idle_partition"):
        events, labels = built[name]
        history, episodes = write(tmp_path / f"{name}.jsonl", events), write(tmp_path / f"{name}.labels", labels)
        result = bt.backtest(history, episodes, settings=settings, show_progress=False)
        assert [(a.key, a.lead_s) for a in result.alerts] == [("ticker:HRWL", 1800)], name
        assert result.recall == 1.0 and result.precision == 1.0, name
