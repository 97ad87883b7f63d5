"""Dead letters: every message the worker cannot take ends here, with its reason and its bytes.

One place for the row (the ``dead_letters`` table), the envelope (the ``deadletter``
topic), the parse step that sorts a batch into valid events and dead letters, and
the report (metric and one log line each).

Reasons: the edge's (``empty``, ``oversize``, ``invalid_utf8``, ``invalid_json``,
``too_deep``, ``not_an_object``, ``missing_field``, ``invalid_field``) and the
pipeline's last resorts for one event's content: ``parse_error`` (a bug in a parser,
logged with its traceback), ``model_error`` (the models fail on
it alone), ``encode_error`` (its rows or output cannot be built or encoded) and
``db_rejected`` (the database refuses its rows). Infrastructure failures never
dead-letter: they pause and retry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable

from agents.pipeline import Received
from infra import metrics
from schemas.events import InvalidEvent, clean_text

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_BYTES = 64 * 1024
MAX_DETAIL_CHARS = 2000


def dead_letter_row(m: Received, reason: str, detail: str) -> dict:
    """The ``dead_letters`` row of a message: its first 64 KiB, its size and digest, the reason."""
    value = m.value
    digest = hashlib.sha256(value or b"").hexdigest()
    size = len(value or b"")
    if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
        detail = f"{detail} (value truncated to its first {MAX_DEAD_LETTER_BYTES} of {len(value)} bytes)"
        value = value[:MAX_DEAD_LETTER_BYTES]
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


def parse_batch(messages: list[Received], parse: Callable, agent: str) -> tuple[list[tuple], list[dict]]:
    """(valid (message, event) pairs, dead-letter rows). A repeated id keeps its first message."""
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
            dead.append(dead_letter_row(m, exc.reason, exc.detail))
            continue
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the partition
            log.exception("parsing %s[%d]@%d failed", m.topic, m.partition, m.offset)
            dead.append(dead_letter_row(m, "parse_error", f"{type(exc).__name__}: {exc}"))
            continue
        if event.id in seen:  # the same id twice in one batch: the first one wins, like a replay
            continue
        seen.add(event.id)
        valid.append((m, event))
    return valid, dead


def report(rows: list[dict]) -> None:
    for row in rows:
        metrics.DEAD_LETTERS.labels(row["topic"], row["reason"]).inc()
        # %r: the detail may quote hostile text, which must not forge log lines
        log.warning("dead letter %s[%d]@%d: %s %r", row["topic"], row["partition"], row["offset"],
                    row["reason"], row["detail"][:200])
