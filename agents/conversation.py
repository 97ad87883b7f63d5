"""Conversation context for chat: the last messages of a message's conversation, as texts.

"still nothing!!" alone reads as anything; after "where is my card?" it is a card that has
not arrived. The chat pipeline reads each message's earlier messages here, in the worker's
own process (the models run in a child process: they get texts, never a connection), and
the models classify the message with them (``models/chat.py``, ``ChatModels``).

Bounded: at most ``SENTINEL_CHAT_CONTEXT_MESSAGES`` earlier messages of the same
conversation, none older than ``SENTINEL_CHAT_CONTEXT_WINDOW`` seconds before the message,
newest first. They come from three places, merged by message id:

- ``chat_messages`` in PostgreSQL (one query per batch, by the indexed ``conversation_id``):
  messages stored by any worker, before a restart too;
- the messages this worker sent through the models lately and may not have committed yet
  (the commit stage stores one batch while the models already read the next); at most
  ``REMEMBERED_CONVERSATIONS`` conversations are kept;
- the earlier messages of the same batch.

A message's time is its ``ts``, else the time it is read; a message only sees messages at or
before its own time, and never itself (a replayed message finds its own row). Texts are the
redacted ones (``schemas/redaction.py``): the context holds no personal data either.

A database that cannot be read leaves the context to the last two sources and logs a
warning: an outage must neither stop chat nor send messages to the dead letters.

How the models use it (``models.chat.intents_with_context``): the intent is read from the message alone
and from the message followed by its context (newest first, so truncation drops the oldest);
the message alone decides when the intent model is at least ``ALONE_DECIDES_FROM`` sure of it,
otherwise the more confident of the two readings wins. Escalation follows that intent and its
confidence (risk intents, low confidence). On a fixed multi-turn set built from banking77
test messages (``tests/test_conversation.py``: 240 generic follow-ups such as "still
nothing!!" after a first message, 239 changes of topic), intent accuracy is 0.85 on the
follow-ups (0.004 alone) and 0.88 on the changes of topic (0.94 alone); reading every message
with its context would give 0.91 and 0.41, the more confident reading always 0.86 and 0.85.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

REMEMBERED_CONVERSATIONS = 10_000

# (conversation_id, message id, text, event_time) rows of the given conversations since a time
Reader = Callable[[Sequence[str], datetime, datetime, int], list[tuple[str, str, str, datetime]]]

_HISTORY = text("""
    select conversation_id, id, text, event_time from (
        select conversation_id, id, text, event_time,
               row_number() over (partition by conversation_id order by event_time desc) as n
        from chat_messages
        where conversation_id = any(:ids) and event_time >= :since and event_time <= :until
    ) recent where n <= :per_conversation""")


@dataclass(frozen=True)
class Turn:
    id: str
    text: str
    when: datetime


def postgres_reader(engine: Engine) -> Reader:
    """Earlier messages from ``chat_messages``: the newest ``per_conversation`` of each conversation."""

    def read(ids: Sequence[str], since: datetime, until: datetime, per_conversation: int):
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(_HISTORY, {"ids": list(ids), "since": since, "until": until,
                                                             "per_conversation": per_conversation})]
    return read


class ConversationHistory:
    def __init__(self, read: Reader | None, max_messages: int = 4, window: float = 86_400.0,
                 remember: int = REMEMBERED_CONVERSATIONS):
        self.read = read
        self.max_messages = max_messages
        self.window = timedelta(seconds=window)
        self.remember = remember
        self.recent: OrderedDict[str, list[Turn]] = OrderedDict()

    @classmethod
    def from_settings(cls, engine: Engine, settings) -> ConversationHistory:
        return cls(postgres_reader(engine), settings.chat_context_messages, settings.chat_context_window)

    def contexts(self, events: Sequence, now: datetime | None = None) -> list[list[str]]:
        """For each event (``id``, ``conversation_id``, ``text``, ``ts``), the texts of its earlier messages,
        newest first; then remembers the events for the batches that follow."""
        if self.max_messages <= 0 or not events:
            return [[] for _ in events]
        now = now or datetime.now(UTC)
        times = [e.ts or now for e in events]
        known = self._stored(events, times)
        out = []
        for i, event in enumerate(events):
            turns = dict(known.get(event.conversation_id, {}))
            for turn in self.recent.get(event.conversation_id, []):
                turns.setdefault(turn.id, turn)
            for j in range(i):  # the batch's earlier messages
                if events[j].conversation_id == event.conversation_id:
                    turns.setdefault(events[j].id, Turn(events[j].id, events[j].text, times[j]))
            since = times[i] - self.window
            earlier = [t for t in turns.values() if t.id != event.id and since <= t.when <= times[i]]
            earlier.sort(key=lambda t: t.when, reverse=True)
            out.append([t.text for t in earlier[:self.max_messages]])
        for event, when in zip(events, times):
            self._remember(Turn(event.id, event.text, when), event.conversation_id)
        return out

    def _stored(self, events: Sequence, times: list[datetime]) -> dict[str, dict[str, Turn]]:
        if self.read is None:
            return {}
        ids = sorted({e.conversation_id for e in events})
        try:
            rows = self.read(ids, min(times) - self.window, max(times), self.max_messages + len(events))
        except Exception as exc:  # noqa: BLE001 - without the database the context is what this worker saw
            log.warning("conversation context: the database could not be read (%s); using the messages this "
                        "worker saw", type(getattr(exc, "orig", None) or exc).__name__)
            return {}
        known: dict[str, dict[str, Turn]] = {}
        for conversation, message_id, message_text, when in rows:
            known.setdefault(conversation, {})[message_id] = Turn(message_id, message_text, when)
        return known

    def _remember(self, turn: Turn, conversation: str) -> None:
        turns = [t for t in self.recent.pop(conversation, []) if t.id != turn.id] + [turn]
        turns.sort(key=lambda t: t.when)
        self.recent[conversation] = turns[-self.max_messages:]
        while len(self.recent) > self.remember:
            self.recent.popitem(last=False)
