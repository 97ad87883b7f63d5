"""The news agent: validate → micro-batch → sentiment + entities → Postgres → `news.enriched`.

A batch goes through two stages: ``prepare`` (parse, models, rows) on the agent
and ``store`` (one transaction, alert screening) on the commit stage, so the
models work on the next batch while this one is written (see
``agents/commit_stage.py``). Offsets advance only after the batch's database
commit and the produce of its outputs, so a crash replays at most the batches in
flight; idempotent writes absorb the replay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agents.sinks import Batch, PostgresSink, dead_letter_row
from infra import metrics
from models.analysis import Analyzer
from models.entity_keys import KeyResolver, entity_key
from schemas.events import InvalidEvent, NewsEvent, parse_news
from schemas.tables import (
    ArticleKey,
    DeadLetter,
    EntityAlias,
    EntityMention,
    NewsArticle,
)

log = logging.getLogger(__name__)
AGENT = "news"


@dataclass
class Received:
    """A consumed message with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # Kafka record time, seconds since the epoch

    @classmethod
    def from_event(cls, event) -> Received:
        m = event.message
        return cls(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


@dataclass
class Outputs:
    enriched: list[tuple[bytes, bytes]]
    dead: list[dict]
    alerts: list[dict]


@dataclass
class Prepared:
    """A batch after the models: its rows and outputs, and what storing and alerting need."""

    batch: Batch
    outputs: Outputs
    stored: list[Received]  # the valid messages, for the end-to-end latency
    positions: dict[str, Received] = field(default_factory=dict)  # article id -> its message
    touched: dict[str, set[datetime]] = field(default_factory=dict)  # alert key -> event times
    partition_times: dict[int, datetime] = field(default_factory=dict)


def dead_letter_envelope(row: dict) -> bytes:
    """The `deadletter` topic's value: the reason, where the message came from, and its bytes."""
    import base64

    return json.dumps({
        "reason": row["reason"], "detail": row["detail"], "topic": row["topic"], "partition": row["partition"],
        "offset": row["offset"], "key": row["key"].decode("utf-8", "replace") if row["key"] else None,
        "value_base64": base64.b64encode(row["value"] or b"").decode("ascii"),
    }).encode()


def dead_letter_rows_for(messages: list[Received], parse, agent: str) -> tuple[list[tuple], list[dict]]:
    """Parse a batch: (valid (message, event) pairs, dead-letter rows). A repeated id keeps its first message."""
    started = time.time()
    dead: list[dict] = []
    valid: list[tuple] = []
    seen: set[str] = set()
    for m in messages:
        metrics.EVENTS_CONSUMED.labels(m.topic).inc()
        metrics.BATCH_QUEUE.labels(agent).observe(max(0.0, started - m.timestamp))
        try:
            event = parse(m.value)
        except InvalidEvent as exc:
            dead.append(dead_letter_row(m.topic, m.partition, m.offset, m.key, m.value, exc.reason, exc.detail))
            continue
        if event.id in seen:  # the same id twice in one batch: the first one wins, like a replay
            continue
        seen.add(event.id)
        valid.append((m, event))
    return valid, dead


def report_dead_letters(rows: list[dict]) -> None:
    for row in rows:
        metrics.DEAD_LETTERS.labels(row["topic"], row["reason"]).inc()
        log.warning("dead letter %s[%d]@%d: %s (%s)", row["topic"], row["partition"], row["offset"],
                    row["reason"], row["detail"][:200])


class NewsPipeline:
    def __init__(self, analyzer: Analyzer, sink: PostgresSink, model_version: str,
                 resolver: KeyResolver | None = None, detector=None,
                 model_pool: ThreadPoolExecutor | None = None, db_pool: ThreadPoolExecutor | None = None):
        self.analyzer = analyzer
        self.sink = sink
        self.model_version = model_version
        self.resolver = resolver or KeyResolver()
        self.detector = detector
        # One thread each, shared by the agents: the models use torch's own threads,
        # and the database gets its own lane.
        self.model_pool = model_pool or ThreadPoolExecutor(1, thread_name_prefix="models")
        self.db_pool = db_pool or ThreadPoolExecutor(1, thread_name_prefix="db")

    async def prepare(self, messages: list[Received]) -> Prepared:
        """Parse the batch and run the models (in the model thread); build its rows and outputs."""
        loop = asyncio.get_running_loop()
        metrics.BATCH_SIZE.labels(AGENT).observe(len(messages))
        valid, dead = dead_letter_rows_for(messages, parse_news, AGENT)
        analysed = await loop.run_in_executor(self.model_pool, self._analyse, valid)
        batch = Batch()
        enriched: list[tuple[bytes, bytes]] = []
        prepared = Prepared(batch, Outputs(enriched, dead, []), [m for m, _ in valid],
                            {e.id: m for m, e in valid})
        touched, partition_times = prepared.touched, prepared.partition_times
        for (m, event), result in zip(valid, analysed):
            if isinstance(result, Exception):
                dead.append(dead_letter_row(m.topic, m.partition, m.offset, m.key, m.value, "model_error",
                                            f"{type(result).__name__}: {result}"))
                continue
            sentiment, entities = result
            event_time = event.published_at or datetime.fromtimestamp(m.timestamp, tz=UTC)
            batch.add(NewsArticle.__table__, {
                "id": event.id, "title": event.title, "text": event.text, "source": event.source, "url": event.url,
                "published_at": event.published_at, "tickers": event.tickers,
                "sentiment_label": sentiment.label, "sentiment_score": sentiment.score,
                "negative": sentiment.scores["negative"], "neutral": sentiment.scores["neutral"],
                "positive": sentiment.scores["positive"], "model_version": self.model_version,
                "kafka_partition": m.partition, "kafka_offset": m.offset, "event_time": event_time,
            })
            keys, learned = self.resolver.keys_for(entities, event.tickers)
            for key in sorted(keys):
                batch.add(ArticleKey.__table__, {
                    "article_id": event.id, "key": key, "event_time": event_time, "negative": sentiment.scores["negative"],
                    "sentiment": sentiment.scores["positive"] - sentiment.scores["negative"],
                    "is_negative": sentiment.label == "negative"})
                touched.setdefault(key, set()).add(event_time)
            partition_times[m.partition] = max(partition_times.get(m.partition, event_time), event_time)
            for alias, key in learned:
                batch.add(EntityAlias.__table__, {"alias": alias, "key": key, "source": "learned"})
            for e in entities:
                batch.add(EntityMention.__table__, {"article_id": event.id, "start": e.start, "end": e.end,
                                                    "label": e.label, "text": e.text, "score": e.score,
                                                    "entity_key": entity_key(e.text, e.label)})
            enriched.append((event.id.encode(), json.dumps({
                "id": event.id, "title": event.title, "text": event.text, "source": event.source, "url": event.url,
                "published_at": event.published_at.isoformat() if event.published_at else None,
                "event_time": event_time.isoformat(), "tickers": event.tickers,
                "sentiment": sentiment.as_dict(), "entities": [e.as_dict() for e in entities],
                "model_version": self.model_version,
            }, ensure_ascii=False).encode()))
        for row in dead:
            batch.add(DeadLetter.__table__, row)
        return prepared

    async def store(self, prepared: Prepared) -> Outputs:
        """Write the batch in one transaction (in the database thread), then screen it for alerts."""
        loop = asyncio.get_running_loop()
        out = prepared.outputs
        rejected: list[dict] = []

        def on_rejected(table, row, reason):
            m = prepared.positions.get(row.get("id") or row.get("article_id"))
            if m is not None and table is NewsArticle.__table__:
                rejected.append(dead_letter_row(m.topic, m.partition, m.offset, m.key, m.value, "db_rejected", reason))
                out.enriched[:] = [(k, v) for k, v in out.enriched if k != row["id"].encode()]

        await loop.run_in_executor(self.db_pool, self.sink.write, prepared.batch, on_rejected)
        if rejected:
            await loop.run_in_executor(self.db_pool, self.sink.write, Batch({DeadLetter.__table__: rejected}))
            out.dead += rejected
        committed = time.time()
        if self.detector is not None and prepared.touched:
            out.alerts = await loop.run_in_executor(self.db_pool, self.sink.retrying, self.detector.evaluate,
                                                    prepared.touched, prepared.partition_times)
        for m in prepared.stored:
            metrics.END_TO_END.labels(AGENT).observe(max(0.0, committed - m.timestamp))
        return out

    def _analyse(self, valid: list[tuple[Received, NewsEvent]]) -> list:
        """Per-event (sentiment, entities), or the exception for an event the models cannot take."""
        if not valid:
            return []
        texts = [event.content for _, event in valid]
        try:
            with metrics.BATCH_MODELS.labels(AGENT).time():
                return self.analyzer.analyze_texts(texts)
        except Exception:  # one bad input must not sink the batch: find it
            log.exception("batch analysis failed; retrying one event at a time")
            out = []
            for text in texts:
                try:
                    out.append(self.analyzer.analyze_texts([text])[0])
                except Exception as exc:  # noqa: BLE001 - reported as a dead letter
                    out.append(exc)
            return out
