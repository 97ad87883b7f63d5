"""Dead letters: every message the worker cannot take ends here, with its reason and its bytes.

One place for the row (the ``dead_letters`` table), the envelope (the ``deadletter``
topic), the parse step that sorts a batch into valid events and dead letters, and
the report (a sensor hook and one log line each).

Reasons: the edge's (``empty``, ``oversize``, ``invalid_utf8``, ``invalid_json``,
``too_deep``, ``not_an_object``, ``missing_field``, ``invalid_field``) and the
pipeline's last resorts for one event's content: ``parse_error`` (a bug in a parser,
logged with its traceback), ``model_error`` (the models fail on
it alone), ``encode_error`` (its rows or output cannot be built or encoded) and
``db_rejected`` (the database refuses its rows). Infrastructure failures never
dead-letter: they pause and retry.

Personal data: a chat message's bytes are redacted before they are stored or produced
(``redact_payload``), as the text of a valid one is at the edge (``schemas/redaction.py``).
What is kept of a chat dead letter: a payload that is a JSON document keeps its
structure, keys and values, each string (and number) with its card numbers, IBANs, e-mail addresses,
SSNs and phone numbers replaced by placeholders (the JSON is written anew, so formatting
and escapes may differ from the original bytes); any other payload (not UTF-8 or not JSON)
keeps its bytes, invalid ones included, with the same replacements made in its text. The
full recognizers read all of it: a string longer than a chat message (4,000 characters) is
read in overlapping windows (``schemas.redaction.redact_long``), so an over-long message
keeps no identifier, not even one on a window's edge. The bound: a payload of more than
``MAX_REDACTED_CHARS`` (16,000) characters of text, four messages' worth, is not redacted
but dropped (``value`` is None), keeping its size and the digest of its original bytes; so
is a payload on which a recognizer fails (no coarse mask that would leave an IBAN's or a
dotted card's fragments). Redacting 16,000 characters reads 5 windows: the worst texts
crafted in ``tests/test_redaction.py`` (phone-like windows repeated) take about 0.2 s a
window here, about 1 s for the whole payload, where a 64 KiB one would take 4 s. The
original digest of a dropped body confirms a guess only of the whole payload, over 16,000
characters. The reason, the detail (redacted too, or dropped past the same bound), the
position, the key (the message id, not customer text) and the original size are kept; of
a redacted payload the digest is the stored bytes' (one of the original bytes would confirm
a guessed card number). News payloads are kept as they came (their first 64 KiB).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable

from agents import errors, sensors
from agents.errors import Action, Failure, Stage
from agents.pipeline import Received
from schemas import topics
from schemas.events import clean_text
from schemas.records import DeadLetterEnvelope
from schemas.redaction import RedactionError, redact_long

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 2000
REDACTED_TOPICS = frozenset({topics.CHAT.name})  # customer text: personal data never stored or produced as it came


MAX_REDACTED_CHARS = 16_000  # the most text a chat dead letter is redacted in full from; longer: dropped


def _scrub_json(obj):
    """Every string and number of a parsed JSON document (keys too) redacted, iteratively, so any depth is fine."""
    root = [obj]
    stack = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        node = parent[key]
        if isinstance(node, str):
            parent[key] = redact_long(node)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            redacted = redact_long(str(node))  # a card number can be a JSON number too
            if redacted != str(node):
                parent[key] = redacted
        elif isinstance(node, list):
            stack.extend((node, i) for i in range(len(node)))
        elif isinstance(node, dict):
            items = list(node.items())
            node.clear()
            for k, v in items:
                node[redact_long(k)] = v  # keys that redact alike merge: the later value wins
            stack.extend((node, k) for k in node)
    return root[0]


def redact_payload(value: bytes) -> bytes:
    """A chat payload with its personal data replaced by placeholders (what is kept: see the module's doc).
    Reads all of it (the caller bounds it: ``MAX_REDACTED_CHARS``); ``RedactionError`` if a recognizer fails."""
    try:
        document = _scrub_json(json.loads(value.decode("utf-8")))
        out = json.dumps(document, ensure_ascii=False)
        try:
            return out.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: escape everything instead
            return json.dumps(document, ensure_ascii=True).encode("ascii")
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass  # not a JSON document: redacted as text
    # Invalid bytes travel through as lone surrogates and come back unchanged.
    return redact_long(value.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def _redact_detail(detail: str) -> str:
    if len(detail) > MAX_REDACTED_CHARS:
        return f"(a detail of {len(detail)} characters, dropped: over the {MAX_REDACTED_CHARS} redacted in full)"
    try:
        return redact_long(detail)
    except RedactionError:
        return f"(a detail of {len(detail)} characters, dropped: it could not be redacted)"


def dead_letter_row(m: Received, reason: str, detail: str) -> dict:
    """The ``dead_letters`` row of a message: its bytes (chat: redacted, or dropped past ``MAX_REDACTED_CHARS``;
    others: the first 64 KiB), its size and digest, the reason."""
    value = m.value
    digest = hashlib.sha256(value or b"").hexdigest()
    size = len(value or b"")
    if m.topic in REDACTED_TOPICS:
        detail = _redact_detail(detail)
        chars = len(value.decode("utf-8", "surrogateescape")) if value else 0
        dropped = None
        if chars > MAX_REDACTED_CHARS:
            dropped = f"{chars} characters, over the {MAX_REDACTED_CHARS} redacted in full"
        elif value:
            try:
                value = redact_payload(value)[:MAX_DEAD_LETTER_BYTES]
            except RedactionError as exc:
                log.warning("dead letter %s[%d]@%d: %s; its body is dropped", m.topic, m.partition, m.offset, exc)
                dropped = "it could not be redacted"
            else:
                # The digest of what is stored: one of the original bytes would confirm a guessed card number.
                digest = hashlib.sha256(value).hexdigest()
        if dropped:
            value = None  # size and digest stay the original's
            detail = f"body dropped ({dropped}; value_sha256 and value_size are the original's): {detail}"
    elif value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
        detail = f"{detail} (value truncated to its first {MAX_DEAD_LETTER_BYTES} of {len(value)} bytes)"
        value = value[:MAX_DEAD_LETTER_BYTES]
    # The detail may quote the message (an exception's text): it must be storable like any text.
    return {"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": m.key, "value": value,
            "value_sha256": digest, "value_size": size, "reason": reason,
            "detail": clean_text(detail)[:MAX_DETAIL_CHARS]}


def envelope(row: dict) -> bytes:
    """The ``deadletter`` topic's value: the reason, where the message came from, and its bytes."""
    return DeadLetterEnvelope(
        reason=row["reason"], detail=row["detail"], topic=row["topic"], partition=row["partition"],
        offset=row["offset"], key=row["key"].decode("utf-8", "replace") if row["key"] else None,
        value_base64=base64.b64encode(row["value"] or b"").decode("ascii")).value()


def parse_batch(messages: list[Received], parse: Callable, agent: str,
                sensor: sensors.Sensor | None = None,
                policy: errors.ErrorPolicy | None = None) -> tuple[list[tuple], list[dict]]:
    """(valid (message, event) pairs, dead-letter rows). A repeated id keeps its first message.

    What a message that cannot be parsed gets is the error policy's (``agents/errors.py``): a dead
    letter, or (``crash``) the exception raised."""
    sensor = sensor or sensors.default
    policy = policy or errors.default
    started = time.time()
    dead: list[dict] = []
    valid: list[tuple] = []
    seen: set[str] = set()
    for m in messages:
        sensor.on_event_in(m.topic, agent, started - m.timestamp)
        try:
            event = parse(m.value)
        except Exception as exc:  # noqa: BLE001 - bad input or a parser bug: the policy's (a dead letter)
            failure, action = policy.decide(exc, Stage.PARSE)
            if action is not Action.DEAD_LETTER:
                raise
            if failure is Failure.INVALID_INPUT:
                dead.append(dead_letter_row(m, exc.reason, exc.detail))
            else:
                log.exception("parsing %s[%d]@%d failed", m.topic, m.partition, m.offset)
                dead.append(dead_letter_row(m, "parse_error", f"{type(exc).__name__}: {exc}"))
            continue
        if event.id in seen:  # the same id twice in one batch: the first one wins, like a replay
            continue
        seen.add(event.id)
        valid.append((m, event))
    return valid, dead


def report(rows: list[dict], sensor: sensors.Sensor | None = None) -> None:
    sensor = sensor or sensors.default
    for row in rows:
        sensor.on_dead_letter(row["topic"], row["reason"])
        # %r: the detail may quote hostile text, which must not forge log lines
        log.warning("dead letter %s[%d]@%d: %s %r", row["topic"], row["partition"], row["offset"],
                    row["reason"], row["detail"][:200])
