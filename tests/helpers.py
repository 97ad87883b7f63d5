"""Test-only data: valid and hostile messages."""

from __future__ import annotations

import json

from infra.harness import (  # noqa: F401
    Services,
    Worker,
    produce,
    read_topic,
    start_services,
    wait_until,
)


def news_values(events: list[dict]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def malformed_news(n: int) -> list[tuple[bytes, str]]:
    """``n`` bad news messages with the dead-letter reason each must get."""
    kinds = [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (json.dumps({"text": "no id here"}).encode(), "missing_field"),
        (json.dumps({"id": "x-empty", "text": "   "}).encode(), "missing_field"),
        (json.dumps({"id": 12345, "text": "id is a number"}).encode(), "invalid_field"),
        (json.dumps({"id": "x-type", "text": ["a", "list"]}).encode(), "invalid_field"),
        (json.dumps({"id": "x-big", "text": "word " * 60_000}).encode(), "oversize"),
        (b"", "empty"),
        (json.dumps({"id": "x-date", "text": "fine text", "published_at": "not a date"}).encode(), "invalid_field"),
    ]
    out = []
    for i in range(n):
        value, reason = kinds[i % len(kinds)]
        if reason in ("invalid_field", "missing_field") and value.startswith(b"{"):
            obj = json.loads(value)
            if isinstance(obj.get("id"), str):
                obj["id"] = f"{obj['id']}-{i}"
            value = json.dumps(obj).encode()
        out.append((value, reason))
    return out
