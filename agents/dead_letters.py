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
and escapes may differ from the original bytes); any other payload (not UTF-8, not JSON,
or cut at 64 KiB) keeps its bytes, invalid ones included, with the same replacements
made in its text. The full recognizers read the first 4,000 characters of a payload's
text (a valid message's bound, so a dead letter costs no more than a message); the rest
is masked coarsely (``schemas.redaction.mask``: runs of 7 or more digits and words with
an ``@``). The reason, the detail (redacted too), the position, the key (the message id,
not customer text), the original size and the digest of the stored bytes are kept; the
original bytes and their digest are not. News payloads are kept as they came.
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
from schemas.events import MAX_CHAT_CHARS, clean_text
from schemas.redaction import mask, redact

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 2000
REDACTED_TOPICS = frozenset({"chat"})  # customer text: personal data never stored or produced as it came


class _Scrubber:
    """Redacts the strings of one payload: the full recognizers for its first ``MAX_CHAT_CHARS`` characters
    of text (a valid chat message's bound, so a dead letter costs no more than a message), the coarse
    ``mask`` for the rest."""

    def __init__(self, budget: int = MAX_CHAT_CHARS):
        self.budget = budget

    def __call__(self, text: str) -> str:
        if len(text) > self.budget:
            return mask(text)
        self.budget -= len(text)
        return redact(text)

    def json(self, obj):
        """Every string and number of a parsed JSON document (keys too), iteratively, so any depth is fine."""
        root = [obj]
        stack = [(root, 0)]
        while stack:
            parent, key = stack.pop()
            node = parent[key]
            if isinstance(node, str):
                parent[key] = self(node)
            elif isinstance(node, int | float) and not isinstance(node, bool):
                redacted = self(str(node))  # a card number can be a JSON number too
                if redacted != str(node):
                    parent[key] = redacted
            elif isinstance(node, list):
                stack.extend((node, i) for i in range(len(node)))
            elif isinstance(node, dict):
                items = list(node.items())
                node.clear()
                for k, v in items:
                    node[self(k)] = v  # keys that redact alike merge: the later value wins
                stack.extend((node, k) for k in node)
        return root[0]


def redact_payload(value: bytes) -> bytes:
    """A chat payload with its personal data replaced by placeholders (what is kept: see the module's doc)."""
    try:
        document = _Scrubber().json(json.loads(value.decode("utf-8")))
        out = json.dumps(document, ensure_ascii=False)
        try:
            return out.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: escape everything instead
            return json.dumps(document, ensure_ascii=True).encode("ascii")
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass  # not a JSON document: redacted as text
    # Invalid bytes travel through as lone surrogates and come back unchanged.
    return _Scrubber()(value.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def dead_letter_row(m: Received, reason: str, detail: str) -> dict:
    """The ``dead_letters`` row of a message: its first 64 KiB (chat: redacted), its size and digest, the reason."""
    value = m.value
    digest = hashlib.sha256(value or b"").hexdigest()
    size = len(value or b"")
    if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
        detail = f"{detail} (value truncated to its first {MAX_DEAD_LETTER_BYTES} of {len(value)} bytes)"
        value = value[:MAX_DEAD_LETTER_BYTES]
    if m.topic in REDACTED_TOPICS:
        if value:
            value = redact_payload(value)[:MAX_DEAD_LETTER_BYTES]
        # The digest of what is stored: one of the original bytes would confirm a guessed card number.
        digest = hashlib.sha256(value or b"").hexdigest()
        detail = _Scrubber()(detail)
    # The detail may quote the message (an exception's text): it must be storable like any text.
    return {"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": m.key, "value": value,
            "value_sha256": digest, "value_size": size, "reason": reason,
            "detail": clean_text(detail)[:MAX_DETAIL_CHARS]}


def envelope(row: dict) -> bytes:
    """The ``deadletter`` topic's value: the reason, where the message came from, and its bytes."""
    return json.dumps({
        "reason": row["reason"], "detail": row["detail"], "topic": row["topic"], "partition": row["partition"],
        "offset": row["offset"], "key": row["key"].decode("utf-8", "replace") if row["key"] else None,
        "value_base64": base64.b64encode(row["value"] or b"").decode("ascii"),
    }).encode()


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
