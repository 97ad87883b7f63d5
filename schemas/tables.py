"""SQLAlchemy 2.0 tables. Every row is keyed by the id of the message that made it,
so a replayed message writes nothing new (``INSERT ... ON CONFLICT DO NOTHING``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class Base(DeclarativeBase):
    metadata = metadata


class NewsArticle(Base):
    """One news event with its sentiment."""

    __tablename__ = "news_articles"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(256))
    url: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tickers: Mapped[list] = mapped_column(JSONB, default=list)
    sentiment_label: Mapped[str] = mapped_column(String(16))
    sentiment_score: Mapped[float] = mapped_column(Float)
    negative: Mapped[float] = mapped_column(Float)
    neutral: Mapped[float] = mapped_column(Float)
    positive: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(128))
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    story_id: Mapped[str | None] = mapped_column(String(128), index=True)  # near-duplicates share one (stories)


class EntityMention(Base):
    """An entity span found in a news article."""

    __tablename__ = "entity_mentions"

    article_id: Mapped[str] = mapped_column(ForeignKey("news_articles.id", ondelete="CASCADE"), primary_key=True)
    start: Mapped[int] = mapped_column(Integer, primary_key=True)
    end: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(16), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    entity_key: Mapped[str] = mapped_column(String(256), index=True)
    # the sentiment toward this entity (companies and tickers, read by the trunk's entity-sentiment head)
    sentiment_label: Mapped[str | None] = mapped_column(String(16))
    sentiment_score: Mapped[float | None] = mapped_column(Float)


class DeadLetter(Base):
    """A message that could not be processed, with the original bytes and the reason."""

    __tablename__ = "dead_letters"
    # A message is the same message only at the same position with the same bytes: the embedded broker
    # starts empty after a restart, so positions alone repeat.
    __table_args__ = (UniqueConstraint("topic", "partition", "offset", "value_sha256",
                                       name="uq_dead_letters_message"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes | None] = mapped_column(LargeBinary)
    value_sha256: Mapped[str] = mapped_column(String(64))
    value_size: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


Index("ix_news_articles_sentiment_time", NewsArticle.sentiment_label, NewsArticle.event_time)


class ArticleKey(Base):
    """The companies/tickers an article is about, one row per (article, key): what spike windows count."""

    __tablename__ = "article_keys"
    __table_args__ = (Index("ix_article_keys_key_time", "key", "event_time"),)

    article_id: Mapped[str] = mapped_column(ForeignKey("news_articles.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    negative: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[float] = mapped_column(Float)  # positive minus negative probability, in [-1, 1]
    is_negative: Mapped[bool] = mapped_column(Boolean)
    story_id: Mapped[str | None] = mapped_column(String(128))  # spike windows count stories, not copies


class EntityAlias(Base):
    """A company name known to stand for a ticker (learned from events or loaded from a mapping file)."""

    __tablename__ = "entity_aliases"

    alias: Mapped[str] = mapped_column(String(256), primary_key=True)
    key: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(32))


class CompanyRow(Base):
    """The company master (``models/companies``): one company, its listings and the names it goes by. ``source``
    is ``user`` (``sentinel companies import``) or ``default`` (pytickersymbols); a user's row replaces a default
    row of the same id or listing."""

    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    tickers: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))  # [{"symbol", "exchange"}]
    isin: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    lei: Mapped[str | None] = mapped_column(String(20), nullable=True)
    aliases: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    industries: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    source: Mapped[str] = mapped_column(String(16), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Alert(Base):
    """One alert per episode: opened once, updated while it lasts, closed when the condition clears."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_key_status", "key", "status"),
                      Index("ix_alerts_undelivered", "created_at", postgresql_where=text("delivered_at is null")))

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict] = mapped_column(JSONB)
    summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The outbox: empty until the alert is on the topic, counted and handed to the webhook.
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The lifecycle kept by people (agents/alerts/lifecycle.py); ``status`` stays the detector's episode state.
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChatMessage(Base):
    """One customer message with what the models read from it."""

    __tablename__ = "chat_messages"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    sentiment_label: Mapped[str] = mapped_column(String(16))
    negative: Mapped[float] = mapped_column(Float)
    entities: Mapped[list] = mapped_column(JSONB, default=list)
    # calm / frustrated / angry / leaving (models/customer_state.py); null when the model was not run
    customer_state: Mapped[str | None] = mapped_column(String(16))
    customer_state_scores: Mapped[dict | None] = mapped_column(JSONB)
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReplyDraft(Base):
    """The reply draft for a message, with everything a reviewer needs to trust or correct it."""

    __tablename__ = "reply_drafts"

    message_id: Mapped[str] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    intent: Mapped[str] = mapped_column(String(128))
    intent_score: Mapped[float] = mapped_column(Float)
    draft: Mapped[str] = mapped_column(Text)
    escalate: Mapped[bool] = mapped_column(Boolean, index=True)
    escalation_reason: Mapped[str | None] = mapped_column(Text)
    retrieved: Mapped[list] = mapped_column(JSONB)
    generator: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The desk's decision (pending until a person or the auto-reply policy sends or rejects it).
    status: Mapped[str] = mapped_column(String(16), server_default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The desk's claim: who opened the draft for editing and when (it lapses after SENTINEL_DESK_CLAIM_TTL), and
    # a version that moves when someone takes the draft over or decides it, so a decision from a stale page fails.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="0")


class DeskUser(Base):
    """A person who may use the desk: an agent reviews drafts, a supervisor also manages alerts."""

    __tablename__ = "desk_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, never the password
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # may not sign in


class DeskSession(Base):
    """A signed-in browser (cookie) or API client (bearer token); only the token's SHA-256 is stored."""

    __tablename__ = "desk_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # cookie or bearer
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class DeskLoginAttempt(Base):
    """Sign-in attempts per key (``user:NAME`` or ``address:IP``) since ``window_start``, counted before the
    password is checked, so every desk process shares one limit."""

    __tablename__ = "desk_login_attempts"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    count: Mapped[int] = mapped_column(Integer)


class ReplyReview(Base):
    """Every decision on a draft (approve, edit, reject, auto), kept as training signal."""

    __tablename__ = "reply_reviews"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    final_text: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(64))
    intent: Mapped[str] = mapped_column(String(128))  # the model's intent when the decision was taken
    corrected_intent: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboundReply(Base):
    """A reply to send on ``chat.outbound`` (an outbox: stored with the decision, marked once produced)."""

    __tablename__ = "outbound_replies"

    message_id: Mapped[str] = mapped_column(ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    sent_by: Mapped[str] = mapped_column(String(64))
    auto: Mapped[bool] = mapped_column(Boolean)
    edited: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    produced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxRecord(Base):
    """A record to send (``agents/outbox.py``), written in the transaction that stores what it reports.

    One per topic and source (the article or message it reports; a reply's message): a replayed event
    writes none, so only what was stored is ever sent, and ``produced_at`` says whether it was.
    ``due_at`` is when the worker's sweep may send it: now for the desk's replies, after a lease for
    the records the agent loop sends itself right after its commit (the sweep sends them only when a
    crash came in between), and again after a lease once the sweep has taken it.
    """

    __tablename__ = "outbox"

    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    produced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Story(Base):
    """Near-duplicate articles (reprints, updates, wire copies) within the story horizon: one story.

    Its id hashes its first copy's normalised headline and time slice; ``copies`` and ``outlets`` are recounted from
    ``news_articles`` after each batch, so a replayed batch changes nothing.
    """

    __tablename__ = "stories"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    headline: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text)  # the founder's normalised headline, to rebuild the index
    # the founder's headline embedding (the trunk's embedding head), so a restart rebuilds without the model
    embedding: Mapped[list | None] = mapped_column(ARRAY(REAL), nullable=True)
    outlets: Mapped[list] = mapped_column(JSONB, default=list)
    copies: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())



class Watchlist(Base):
    """Companies someone follows: one desk user's (``owner_id``) or, with no owner, shared by everyone."""

    __tablename__ = "watchlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("desk_users.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # where its companies' new alerts are POSTed (agents/alerts/routing.py), as ``slack`` or ``teams`` JSON
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_format: Mapped[str | None] = mapped_column(String(8))


class WatchlistCompany(Base):
    """A company on a watchlist (a company id of the company master; no foreign key, so re-importing the master
    keeps the lists)."""

    __tablename__ = "watchlist_companies"

    watchlist_id: Mapped[int] = mapped_column(ForeignKey("watchlists.id", ondelete="CASCADE"), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

Index("ix_article_keys_event_time", ArticleKey.event_time)
Index("ix_outbox_due", OutboxRecord.due_at, postgresql_where=OutboxRecord.produced_at.is_(None))
