"""Records that leave Sentinel on its topics (``schemas/topics.py``): one pydantic model each, so every
producer builds them alike and every reader parses them the same way (``Model.model_validate_json``).

Readers tolerate fields they do not know (``extra="ignore"``), so a field can be added without breaking
a consumer; renaming or removing one is a breaking change of the public contract (README, "Topics").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def value(self) -> bytes:
        """The record's bytes on its topic (UTF-8 JSON)."""
        return self.model_dump_json().encode()


class Reading(BaseModel):
    """A classifier's reading: its label, that label's probability and every label's."""

    model_config = ConfigDict(extra="ignore")

    label: str
    score: float
    scores: dict[str, float] = {}


class EntityRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    label: str
    start: int
    end: int
    score: float
    sentiment: dict[str, Any] | None = None  # the sentiment toward this entity (companies and tickers)
    company: dict[str, Any] | None = None  # the company it links to, when linked


class NewsEnriched(Record):
    """``news.enriched``, keyed by the article id: the article with its sentiment, entities and story."""

    id: str
    title: str | None = None
    text: str = ""
    source: str | None = None
    url: str | None = None
    published_at: str | None = None
    event_time: str
    story_id: str | None = None
    tickers: list[str] = []
    sentiment: Reading
    entities: list[EntityRecord] = []
    model_version: str

    def key(self) -> bytes:
        return self.id.encode()


class ChatReply(Record):
    """``chat.replies``, keyed by the message id: the reply draft and what the models read."""

    message_id: str
    conversation_id: str
    draft: str
    intent: str
    intent_score: float
    answer_id: str | None = None
    escalate: bool
    escalation_reason: str | None = None
    retrieved: list[dict[str, Any]] = []
    sentiment: Reading
    customer_state: Reading | None = None

    def key(self) -> bytes:
        return self.message_id.encode()


class OutboundReply(Record):
    """``chat.outbound``, keyed by the conversation: a reply to send (the desk's, or an auto-reply)."""

    message_id: str
    conversation_id: str
    text: str
    sent_by: str
    auto: bool
    edited: bool

    def key(self) -> bytes:
        return self.conversation_id.encode()


class AlertMessage(Record):
    """``alerts``, keyed by the alert's key: a sentiment spike or a chat escalation."""

    id: str
    kind: str
    key: str
    severity: str
    opened_at: str
    payload: dict[str, Any]
    summary: str


class DeadLetterEnvelope(Record):
    """``deadletter``, keyed by the message's own key: why a message could not be processed, and its bytes."""

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    value_base64: str
