"""The news pipeline: sentiment + entities per article; its story; rows, `news.enriched`, spike screening.

Parsing, batching, dead letters, storage, produce and acknowledgement are the agent
loop's (``agents/loop.py``); this module says only what is particular to news.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from agents import clock, sensors
from agents.alerts import stories
from agents.alerts.records import AlertRecord
from agents.alerts.stories import StoryIndex
from agents.pipeline import Built, Received
from infra.settings import Settings
from models.analysis import Analyzer
from agents.alerts.spikes import COMPANY_PREFIX
from models.companies.linking import Universe, attach_links, correct_mentions
from models.entity_keys import NOT_COMPANIES, KeyResolver, entity_key
from schemas import topics
from schemas.events import NewsEvent, parse_news
from schemas.records import NewsEnriched
from schemas.tables import ArticleKey, EntityAlias, EntityMention, NewsArticle, Story

UNIVERSE_REFRESH_S = 60.0  # how often a worker looks for an import into the company master
STORY_REFRESH_S = 2.0  # how often a worker takes in the stories other workers founded
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def lead_end(event: NewsEvent) -> int:
    """Where the lead of the models' text (``event.content``) ends: the title and the first sentence of the
    body (the whole title when there is no body, the first sentence when there is no title)."""
    content = event.content
    title, body = (event.title or "").strip(), event.text.strip()
    start = len(content) - len(body) if title and body and not body.startswith(title) else 0  # the body's start
    found = _SENTENCE_END.search(content, start)
    return found.end() if found else len(content)


def mention_key(resolver: KeyResolver, e) -> str | None:
    """An ORG or TICKER entity's alert key: ``company:<id>`` when it links to a company (``e.company``, set by
    ``attach_links``), else today's surface key (``ticker:AAPL``, or the name joined to its ticker); None for a
    name that is no company (a currency, an exchange)."""
    company = getattr(e, "company", None)
    if company:
        return COMPANY_PREFIX + company["id"]
    if e.label == "TICKER":
        return entity_key(e.text, "TICKER")
    org = entity_key(e.text, "ORG")
    return None if org in NOT_COMPANIES else resolver.alias(org) or org


def tag_key(universe: Universe | None, ticker: str) -> str:
    """A publisher's ticker tag as an alert key: its company's when the symbol links, else ``ticker:SYMBOL``."""
    link = universe.link(ticker, "TICKER") if universe is not None and len(universe) else None
    return COMPANY_PREFIX + link.company.id if link else entity_key(ticker, "TICKER")


def central_keys(resolver: KeyResolver, entities, event: NewsEvent, universe: Universe | None = None) -> set[str]:
    """The keys an article is about, not merely mentions: tickers the publisher tagged it with, and
    companies or tickers named in its lead (``lead_end``)."""
    end = lead_end(event)
    keys = {tag_key(universe, t) for t in event.tickers}
    for e in entities:
        if e.start >= end or e.label not in ("ORG", "TICKER"):
            continue
        key = mention_key(resolver, e)
        if key is not None:
            keys.add(key)
    return keys


def article_keys(resolver: KeyResolver, entities, event: NewsEvent,
                 universe: Universe | None = None) -> tuple[set[str], list[tuple[str, str]]]:
    """Every key an article names, and the name-to-ticker joins it teaches: linked mentions and tags are their
    companies' keys; the resolver joins and learns only from what did not link."""
    linked = [e for e in entities if getattr(e, "company", None)]
    tags = [tag_key(universe, t) for t in event.tickers]
    keys, learned = resolver.keys_for([e for e in entities if not getattr(e, "company", None)],
                                      [t for t, k in zip(event.tickers, tags) if not k.startswith(COMPANY_PREFIX)])
    keys |= {k for k in tags if k.startswith(COMPANY_PREFIX)}
    keys |= {COMPANY_PREFIX + e.company["id"] for e in linked if e.label in ("ORG", "TICKER")}
    return keys, learned


def key_sentiments(resolver: KeyResolver, entities, event: NewsEvent) -> dict:
    """The sentiment toward each key the article names in its lead (``lead_end``), from its entities' own
    readings (the trunk's entity-sentiment head): the first mention of a key in the text speaks for it. A key
    that is not an entity of the text (a ticker tag only), or an entity without a reading, is not here."""
    end = lead_end(event)
    found = {}
    for e in sorted(entities, key=lambda e: e.start):
        reading = getattr(e, "sentiment", None)
        if reading is None or e.start >= end or e.label not in ("ORG", "TICKER"):
            continue
        key = mention_key(resolver, e)
        if key is not None:
            found.setdefault(key, reading)
    return found


@dataclass
class ArticleFacts:
    """What spike screening needs of a stored article."""

    keys: set[str]
    event_time: datetime
    partition: int
    learned: list[tuple[str, str]]
    story_id: str | None = None
    trusted: bool = True  # False: a time lay too far ahead and was replaced (moves no watermark; agents/clock.py)


class NewsPipeline:
    agent = "news"
    input_topic = topics.NEWS.name
    output_topic = topics.NEWS_ENRICHED.name
    parent = NewsArticle.__table__
    children = frozenset({EntityMention.__table__, ArticleKey.__table__})

    def __init__(self, analyzer: Analyzer, model_version: str, resolver: KeyResolver | None = None,
                 detector=None, engine: Engine | None = None, story_index: StoryIndex | None = None,
                 settings: Settings | None = None, sensor: sensors.Sensor | None = None,
                 universe: Universe | None = None):
        self.analyzer = analyzer
        self.universe = universe or Universe([])  # the company master; reloaded when its table changes
        self._universe_version = None
        self._universe_checked = time.monotonic()
        self.sensor = sensor or sensors.default  # replaced future times (agents/clock.py)
        self.model_version = model_version
        self.resolver = resolver or KeyResolver()
        self.detector = detector
        self.engine = engine
        settings = settings or getattr(detector, "s", None) or Settings()
        self.future_tolerance = timedelta(seconds=settings.future_tolerance)
        self.stories = story_index or StoryIndex.from_settings(settings)
        self._generation = getattr(detector, "generation", 0)
        self.story_refresh = STORY_REFRESH_S
        self._refreshed = time.monotonic()
        if engine is not None and story_index is None:
            self.stories.load(engine)  # a restart must not split the stories under way

    def refresh_universe(self) -> None:
        """Reload the company master when the table changed (`sentinel companies import` while running)."""
        from agents import companies

        self._universe_checked = time.monotonic()
        now = companies.version(self.engine)
        if now != self._universe_version:
            self._universe_version = now
            self.universe = companies.load_universe(self.engine)

    def event_time(self, m: Received, event: NewsEvent) -> tuple[datetime, bool]:
        """The article's event time and whether it can move watermarks (``agents/clock.py``)."""
        return clock.event_time(event.published_at, m.timestamp, self.future_tolerance, sensor=self.sensor)

    @staticmethod
    def parse(raw: bytes | None) -> NewsEvent:
        return parse_news(raw)

    def infer(self, events: list[NewsEvent]) -> list[tuple]:
        """(sentiment, entities, headline embedding) per event (``Analyzer.analyze_texts``)."""
        return self.analyzer.analyze_texts([event.content for event in events],
                                           headline_ends=[stories.headline_end(e.title, e.content) for e in events])

    def build(self, m: Received, event: NewsEvent, result) -> Built:
        sentiment, entities, *embedding = result  # no embedding: stories compare by Jaccard only
        correct_mentions(entities, event.content, self.universe)  # index names; the model's misses it knows
        attach_links(entities, event.content, self.universe)
        scores = sentiment.scores
        event_time, trusted = self.event_time(m, event)
        story = self.stories.assign(event.id, stories.headline_of(event.title, event.text), event_time,
                                    embedding[0] if embedding else None)
        rows = [(NewsArticle.__table__, {
            "id": event.id, "title": event.title, "text": event.text, "source": event.source, "url": event.url,
            "published_at": event.published_at, "tickers": event.tickers,
            "sentiment_label": sentiment.label, "sentiment_score": sentiment.score,
            "negative": scores["negative"], "neutral": scores["neutral"], "positive": scores["positive"],
            "model_version": self.model_version, "kafka_partition": m.partition, "kafka_offset": m.offset,
            "event_time": event_time, "story_id": story.story_id,
        })]
        rows.append((Story.__table__, {
            "id": story.story_id, "first_seen": event_time, "last_seen": event_time, "headline": story.headline,
            "normalized": story.normalized, "outlets": [event.source] if event.source else [], "copies": 1,
            "embedding": story.embedding}))
        keys, learned = article_keys(self.resolver, entities, event, self.universe)
        keys &= central_keys(self.resolver, entities, event, self.universe)  # a passing mention does not count (relevance)
        own = key_sentiments(self.resolver, entities, event)  # each company's own reading, where there is one
        for key in sorted(keys):
            reading = own.get(key, sentiment)
            share = reading.scores
            rows.append((ArticleKey.__table__, {
                "article_id": event.id, "key": key, "event_time": event_time, "negative": share["negative"],
                "sentiment": share["positive"] - share["negative"], "is_negative": reading.label == "negative",
                "story_id": story.story_id}))
        for alias, key in learned:
            rows.append((EntityAlias.__table__, {"alias": alias, "key": key, "source": "learned"}))
        for e in entities:
            rows.append((EntityMention.__table__, {
                "article_id": event.id, "start": e.start, "end": e.end, "label": e.label, "text": e.text,
                "score": e.score, "entity_key": (COMPANY_PREFIX + e.company["id"] if getattr(e, "company", None)
                                                 else entity_key(e.text, e.label)),
                "sentiment_label": e.sentiment.label if getattr(e, "sentiment", None) is not None else None,
                "sentiment_score": e.sentiment.score if getattr(e, "sentiment", None) is not None else None}))
        record = NewsEnriched(
            id=event.id, title=event.title, text=event.text, source=event.source, url=event.url,
            published_at=event.published_at.isoformat() if event.published_at else None,
            event_time=event_time.isoformat(), story_id=story.story_id, tickers=event.tickers,
            sentiment=sentiment.as_dict(), entities=[e.as_dict() for e in entities], model_version=self.model_version)
        return Built(rows, [(record.key(), record.value())], extra=ArticleFacts(keys, event_time, m.partition, learned,
                                                                           story.story_id, trusted))

    def after_commit(self, stored: list[Built]) -> list[AlertRecord]:
        """Align the learned aliases with the database's (first writer wins), recount the touched stories,
        then decide the windows that became final."""
        facts = [b.extra for b in stored]
        if self.engine is not None and time.monotonic() - self._universe_checked >= UNIVERSE_REFRESH_S:
            self.refresh_universe()
        if self.engine is not None:
            generation = getattr(self.detector, "generation", 0)
            if generation != self._generation:  # a rebalance: other workers' recent stories
                self._generation = generation
                self.stories.load(self.engine)
            elif facts and time.monotonic() - self._refreshed >= self.story_refresh:
                # stories founded by other workers (keyless reprints land on every partition): later copies
                # here join them instead of founding their own
                self._refreshed = time.monotonic()
                self.stories.load(self.engine, since=min(f.event_time for f in facts) - timedelta(minutes=10))
            touched = sorted({f.story_id for f in facts if f.story_id})
            if touched:
                with self.engine.begin() as conn:
                    stories.recount(conn, touched)
        learned = sorted({alias for f in facts for alias, _ in f.learned})
        if learned and self.engine is not None:
            with self.engine.connect() as conn:
                winners = dict(conn.execute(text("select alias, key from entity_aliases where alias = any(:a)"),
                                            {"a": learned}).all())
            self.resolver.settle(winners)
        if self.detector is None or not facts:
            return []
        return self.detector.evaluate([(f.partition, f.event_time, f.trusted) for f in facts])
