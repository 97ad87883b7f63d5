"""Every topic Sentinel reads or writes, with its key and its value: the one place topic names are written.

Inputs are validated at the edge (``schemas/events.py``); outputs are ``schemas/records.py`` models.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from schemas import records
from schemas.events import ChatEvent, NewsEvent


@dataclass(frozen=True)
class Topic:
    name: str
    key: str  # what the record's key is
    value: type[BaseModel]  # the record's value
    doc: str
    single_partition: bool = False  # else as many partitions as the inputs (``topic_partitions``)

    def __str__(self) -> str:
        return self.name


NEWS = Topic("news", "the article id (or none)", NewsEvent, "input: news events (JSON)")
NEWS_ENRICHED = Topic("news.enriched", "the article id", records.NewsEnriched,
                      "output: news events with sentiment and entities")
CHAT = Topic("chat", "the message id (or none)", ChatEvent, "input: customer chat messages (JSON)")
CHAT_REPLIES = Topic("chat.replies", "the message id", records.ChatReply, "output: reply drafts")
CHAT_OUTBOUND = Topic("chat.outbound", "the conversation id", records.OutboundReply,
                      "output: replies to send, keyed by conversation (desk or auto-reply)")
ALERTS = Topic("alerts", "the alert's key", records.AlertMessage, "output: sentiment spikes and chat escalations",
               single_partition=True)
DEAD_LETTERS = Topic("deadletter", "the message's key", records.DeadLetterEnvelope,
                     "output: messages that could not be processed (raw bytes + reason)", single_partition=True)

ALL = (NEWS, NEWS_ENRICHED, CHAT, CHAT_REPLIES, CHAT_OUTBOUND, ALERTS, DEAD_LETTERS)
INPUTS = (NEWS, CHAT)
