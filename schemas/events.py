"""Event records at the edge: every field typed, sizes bounded, unknown fields tolerated.

``parse_news`` turns raw Kafka bytes into a ``NewsEvent`` or raises ``InvalidEvent``
with a short machine-readable reason (the dead-letter reason) and a detail.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.redaction import redact

MAX_EVENT_BYTES = 256 * 1024
MAX_TEXT_CHARS = 20_000
MAX_CHAT_CHARS = 4_000
MAX_JSON_DEPTH = 32

_CONTROL = {c: None for c in range(32) if chr(c) not in "\t\n\r"}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Text that every later stage can encode: NUL and other control characters dropped
    (PostgreSQL text cannot hold NUL), and lone UTF-16 surrogates, which JSON escapes such as
    ``"\\ud800"`` can carry but UTF-8 cannot encode, replaced by U+FFFD as a UTF-8 decoder
    replaces invalid bytes. (A valid escaped pair is already one character after ``json.loads``.)"""
    return _LONE_SURROGATE.sub("\ufffd", value.translate(_CONTROL))


def Bounded(max_length: int, min_length: int = 0, strip: bool = False):
    """A string with bounded length and no control characters."""
    return Annotated[str, AfterValidator(clean_text),
                     StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length)]


def _utc(value: datetime) -> datetime:
    """Times without a zone are taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def _plausible(value: datetime) -> datetime:
    """An event time from 1970 up to 2100: outside it is a broken clock (year 1 overflows the window
    arithmetic downstream), refused here so that it dead-letters this event alone."""
    if not EARLIEST <= value < LATEST:
        raise PydanticCustomError("out_of_range", "time must lie between 1970-01-01 and 2100-01-01 (UTC)")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc), AfterValidator(_plausible)]
Id = Bounded(128, min_length=1, strip=True)
Ticker = Bounded(16, min_length=1, strip=True)


class InvalidEvent(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NewsEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    id: Id
    text: Bounded(MAX_TEXT_CHARS) = ""
    title: Bounded(2_000) | None = None
    source: Bounded(256) | None = None
    published_at: UtcDatetime | None = None
    url: Bounded(2_048) | None = None
    tickers: Annotated[list[Ticker], Field(max_length=64)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_content(self) -> "NewsEvent":
        if not self.text.strip() and not (self.title or "").strip():
            raise PydanticCustomError("missing", "text or title must be a non-empty string")
        return self

    @property
    def content(self) -> str:
        """What the models read: the title and the body, as one text."""
        title = (self.title or "").strip()
        text = self.text.strip()
        if title and text:
            if text.startswith(title):
                return text
            return f"{title}. {text}" if title[-1] not in ".!?:" else f"{title} {text}"
        return title or text


def _depth(obj, limit: int) -> int:
    """Depth of nested containers, stopping once past ``limit``."""
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def decode_json(raw: bytes | None) -> dict:
    """Bytes to a JSON object, or ``InvalidEvent`` with the reason."""
    if raw is None:
        raise InvalidEvent("empty", "the message has no value")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("oversize", f"{len(raw)} bytes, limit {MAX_EVENT_BYTES}")
    if not raw.strip():
        raise InvalidEvent("empty", "the message value is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_utf8", str(exc)) from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise InvalidEvent("too_deep", f"JSON nesting deeper than {MAX_JSON_DEPTH}") from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    if _depth(obj, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise InvalidEvent("too_deep", f"JSON nesting deeper than {MAX_JSON_DEPTH}")
    return obj


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "event"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def validate(model: type[BaseModel], raw: bytes | None):
    obj = decode_json(raw)
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        missing = any(e["type"] == "missing" for e in exc.errors())
        too_long = any(e["type"] in ("string_too_long", "too_long") for e in exc.errors())
        reason = "missing_field" if missing else "oversize" if too_long else "invalid_field"
        raise InvalidEvent(reason, _validation_detail(exc)) from None


def parse_news(raw: bytes | None) -> NewsEvent:
    return validate(NewsEvent, raw)


class ChatEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Id
    conversation_id: Id
    # Personal data (cards, IBANs, e-mail addresses, phone numbers ...) becomes placeholders here, after the
    # length check, so nothing downstream (rows, topics, alerts, logs, prompts) ever holds it (schemas/redaction.py).
    text: Annotated[Bounded(MAX_CHAT_CHARS), AfterValidator(redact)]
    customer_id: Bounded(128) | None = None
    channel: Bounded(32) | None = None
    ts: UtcDatetime | None = None

    @model_validator(mode="after")
    def _has_text(self) -> "ChatEvent":
        if not self.text.strip():
            raise PydanticCustomError("missing", "text must be a non-empty string")
        return self


def parse_chat(raw: bytes | None) -> ChatEvent:
    return validate(ChatEvent, raw)
