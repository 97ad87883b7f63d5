"""Edge validation of news events: every bad input gets a reason, never an exception."""

import json

import pytest

from schemas.events import MAX_EVENT_BYTES, InvalidEvent, parse_chat, parse_news


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


@pytest.mark.parametrize("field, value", [("ts", "0001-01-01T00:00:00Z"), ("ts", "2100-01-01T00:00:00Z"),
                                          ("ts", "1969-12-31T23:59:59Z")])
def test_a_chat_time_outside_1970_to_2100_is_refused_at_the_edge(field, value):
    raw = json.dumps({"id": "m1", "conversation_id": "c1", "text": "hello", field: value}).encode()
    with pytest.raises(InvalidEvent) as err:
        parse_chat(raw)
    assert "1970" in err.value.detail


def test_a_news_time_in_year_one_is_refused_and_2099_is_kept_for_the_clock_rule():
    with pytest.raises(InvalidEvent):
        parse_news(json.dumps({"id": "n1", "title": "t", "published_at": "0001-01-01T00:00:00Z"}).encode())
    assert parse_news(json.dumps({"id": "n2", "title": "t", "published_at": "2099-01-01T00:00:00Z"}).encode())


def test_one_clock_rule_holds_record_time_and_claimed_time_to_now_plus_the_tolerance():
    from datetime import UTC, datetime, timedelta

    from agents.clock import event_time

    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    tol = timedelta(minutes=5)
    stamped_2099 = datetime(2099, 1, 1, tzinfo=UTC).timestamp()
    assert event_time(None, stamped_2099, tol, now) == (now, False)  # the receive time stands in
    assert event_time(datetime(2099, 1, 1, tzinfo=UTC), stamped_2099, tol, now) == (now, False)
    assert event_time(None, now.timestamp() - 60, tol, now) == (now - timedelta(minutes=1), True)
    claimed = now - timedelta(hours=2)
    assert event_time(claimed, now.timestamp(), tol, now) == (claimed, True)
    assert event_time(now + timedelta(minutes=4), now.timestamp(), tol, now) == (now + timedelta(minutes=4), True)
