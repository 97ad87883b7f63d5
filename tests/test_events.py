"""Edge validation of news events: every bad input gets a reason, never an exception."""

import json

import pytest

from schemas.events import MAX_EVENT_BYTES, InvalidEvent, parse_news


def reason(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_news(raw)
    assert info.value.detail
    return info.value.reason


@pytest.mark.parametrize("raw, expected", [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"{nope", "invalid_json"),
    (b"\xc3\x28", "invalid_utf8"),
    (b'"just a string"', "not_an_object"),
    (b"[]", "not_an_object"),
    (b'{"text": "no id"}', "missing_field"),
    (b'{"id": "a", "text": ""}', "missing_field"),
    (b'{"id": "a", "title": "  ", "text": "  "}', "missing_field"),
    (b'{"id": 7, "text": "numeric id"}', "invalid_field"),
    (b'{"id": "a", "text": {"nested": 1}}', "invalid_field"),
    (b'{"id": "a", "text": "x", "published_at": "yesterday"}', "invalid_field"),
    (b'{"id": "a", "text": "x", "tickers": "AAPL"}', "invalid_field"),
    (json.dumps({"id": "a", "text": "x" * 20_001}).encode(), "oversize"),
    (json.dumps({"id": "a" * 129, "text": "x"}).encode(), "oversize"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "too_deep"),
    (b"[" * 100_000, "too_deep"),
])
def test_bad_input_gets_a_reason(raw, expected):
    assert reason(raw) == expected


def test_oversize_payload_is_refused_before_parsing():
    assert reason(b'{"id": "a", "text": "' + b"x" * MAX_EVENT_BYTES + b'"}') == "oversize"


def test_valid_event_is_cleaned_and_tolerates_unknown_fields():
    event = parse_news(json.dumps({
        "id": "  n-1 ", "title": "Nokia cuts jobs", "text": "Nokia\u0000 said\x07 it would cut jobs.",
        "published_at": "2026-03-02T10:00:00", "tickers": ["NOK"], "extra": {"anything": [1, 2]},
    }).encode())
    assert event.id == "n-1"
    assert "\x00" not in event.text and "\x07" not in event.text
    assert event.published_at.tzinfo is not None
    assert event.content == "Nokia cuts jobs. Nokia said it would cut jobs."


def test_body_that_repeats_the_title_is_read_once():
    event = parse_news(b'{"id": "r", "title": "Nokia cuts jobs", "text": "Nokia cuts jobs. More to follow."}')
    assert event.content == "Nokia cuts jobs. More to follow."


def test_title_alone_is_enough():
    assert parse_news(b'{"id": "t", "title": "Markets rally"}').content == "Markets rally"
