"""The news pipeline: sentiment + entities per article; rows, `news.enriched`, spike screening.

Parsing, batching, dead letters, storage, produce and acknowledgement are the agent
loop's (``agents/loop.py``); this module says only what is particular to news.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, text

from agents.alerts.records import AlertRecord
from agents.pipeline import Built, Received
from models.analysis import Analyzer
from models.entity_keys import KeyResolver, entity_key
from schemas.events import NewsEvent, parse_news
from schemas.tables import ArticleKey, EntityAlias, EntityMention, NewsArticle


@dataclass
class ArticleFacts:
    """What spike screening needs of a stored article."""

    keys: set[str]
    event_time: datetime
    partition: int
    learned: list[tuple[str, str]]


class NewsPipeline:
    agent = "news"
    input_topic = "news"
    output_topic = "news.enriched"
    parent = NewsArticle.__table__
    children = frozenset({EntityMention.__table__, ArticleKey.__table__})

    def __init__(self, analyzer: Analyzer, model_version: str, resolver: KeyResolver | None = None,
                 detector=None, engine: Engine | None = None):
        self.analyzer = analyzer
        self.model_version = model_version
        self.resolver = resolver or KeyResolver()
        self.detector = detector
        self.engine = engine

    @staticmethod
    def parse(raw: bytes | None) -> NewsEvent:
        return parse_news(raw)

    def infer(self, events: list[NewsEvent]) -> list[tuple]:
        return self.analyzer.analyze_texts([event.content for event in events])

    def build(self, m: Received, event: NewsEvent, result) -> Built:
        sentiment, entities = result
        scores = sentiment.scores
        event_time = event.published_at or datetime.fromtimestamp(m.timestamp, tz=UTC)
        rows = [(NewsArticle.__table__, {
            "id": event.id, "title": event.title, "text": event.text, "source": event.source, "url": event.url,
            "published_at": event.published_at, "tickers": event.tickers,
            "sentiment_label": sentiment.label, "sentiment_score": sentiment.score,
            "negative": scores["negative"], "neutral": scores["neutral"], "positive": scores["positive"],
            "model_version": self.model_version, "kafka_partition": m.partition, "kafka_offset": m.offset,
            "event_time": event_time,
        })]
        keys, learned = self.resolver.keys_for(entities, event.tickers)
        for key in sorted(keys):
            rows.append((ArticleKey.__table__, {
                "article_id": event.id, "key": key, "event_time": event_time, "negative": scores["negative"],
                "sentiment": scores["positive"] - scores["negative"], "is_negative": sentiment.label == "negative"}))
        for alias, key in learned:
            rows.append((EntityAlias.__table__, {"alias": alias, "key": key, "source": "learned"}))
        for e in entities:
            rows.append((EntityMention.__table__, {
                "article_id": event.id, "start": e.start, "end": e.end, "label": e.label, "text": e.text,
                "score": e.score, "entity_key": entity_key(e.text, e.label)}))
        record = json.dumps({
            "id": event.id, "title": event.title, "text": event.text, "source": event.source, "url": event.url,
            "published_at": event.published_at.isoformat() if event.published_at else None,
            "event_time": event_time.isoformat(), "tickers": event.tickers,
            "sentiment": sentiment.as_dict(), "entities": [e.as_dict() for e in entities],
            "model_version": self.model_version,
        }, ensure_ascii=False).encode()
        return Built(rows, [(event.id.encode(), record)], extra=ArticleFacts(keys, event_time, m.partition, learned))

    def after_commit(self, stored: list[Built]) -> list[AlertRecord]:
        """Align the learned aliases with the database's (first writer wins), then screen the touched windows."""
        facts = [b.extra for b in stored]
        learned = sorted({alias for f in facts for alias, _ in f.learned})
        if learned and self.engine is not None:
            with self.engine.connect() as conn:
                winners = dict(conn.execute(text("select alias, key from entity_aliases where alias = any(:a)"),
                                            {"a": learned}).all())
            self.resolver.settle(winners)
        if self.detector is None or not facts:
            return []
        touched: dict[str, set[datetime]] = {}
        partition_times: dict[int, datetime] = {}
        for f in facts:
            for key in f.keys:
                touched.setdefault(key, set()).add(f.event_time)
            partition_times[f.partition] = max(partition_times.get(f.partition, f.event_time), f.event_time)
        return self.detector.evaluate(touched, partition_times)
