"""Unit tests of the desk's parts that need no services: password hashing, CSRF tokens, the sign-in
rate limit, and the auto-reply policy (with its evaluation curve)."""

from __future__ import annotations

import json
import math
import time

import pytest

from agents.desk.auto_reply import NEVER, AutoReplyPolicy, read_overrides
from agents.desk.evaluate_auto_reply import curve
from agents.desk.security import Csrf, hash_password, token_digest, verify_password
from infra.settings import Settings


# -- passwords ------------------------------------------------------------------------------------------
def test_passwords_are_hashed_with_argon2id_and_verified():
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert hash_password("correct horse battery") != hashed  # salted
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse batterY")
    assert not verify_password(None, "correct horse battery")  # unknown user
    assert not verify_password("not a hash", "whatever")
    assert not verify_password(hashed, "x" * 5000)  # absurd input is refused before hashing


def test_short_passwords_are_refused():
    with pytest.raises(ValueError):
        hash_password("short")


def test_tokens_are_stored_as_digests():
    assert token_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- CSRF -------------------------------------------------------------------------------------------------
def test_csrf_token_is_bound_to_its_cookie_and_key():
    csrf = Csrf("key-one", max_age=3600)
    cookie = csrf.new_cookie_value()
    token = csrf.token(cookie)
    assert csrf.valid(token, cookie)
    assert not csrf.valid(token, csrf.new_cookie_value())  # another browser's cookie
    assert not csrf.valid(token, None)
    assert not csrf.valid(None, cookie)
    assert not csrf.valid(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), cookie)  # tampered
    assert not Csrf("key-two", max_age=3600).valid(token, cookie)  # signed with another key
    assert not csrf.valid(Csrf("key-two", 3600).token(cookie), cookie)


def test_csrf_token_expires():
    csrf = Csrf("key", max_age=1)
    cookie = csrf.new_cookie_value()
    token = csrf.token(cookie)
    time.sleep(2.1)  # itsdangerous counts whole seconds
    assert not csrf.valid(token, cookie)


# -- auto-reply policy -------------------------------------------------------------------------------------
def test_policy_sends_only_confident_unescalated_drafts_when_on():
    policy = AutoReplyPolicy(True, 0.9)
    assert policy.allows("card_arrival", 0.9, False)  # at the threshold
    assert policy.allows("card_arrival", 0.97, False)
    assert not policy.allows("card_arrival", 0.8999, False)
    assert not policy.allows("card_arrival", 0.99, True)  # escalated: never
    assert not policy.allows("card_arrival", float("nan"), False)
    assert not AutoReplyPolicy(False, 0.9).allows("card_arrival", 1.0, False)  # off: nothing by itself


def test_policy_per_intent_overrides(tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"card_arrival": 0.5, "exchange_rate": None}))
    overrides = read_overrides(path)
    assert overrides == {"card_arrival": 0.5, "exchange_rate": NEVER}
    policy = AutoReplyPolicy.from_settings(Settings(auto_reply_overrides=path, auto_reply_min_score=0.9))
    assert policy.allows("card_arrival", 0.6, False)
    assert not policy.allows("exchange_rate", 1.0, False)
    assert not policy.allows("top_up_failed", 0.6, False)  # the default threshold
    assert policy.threshold("exchange_rate") == math.inf


@pytest.mark.parametrize("content", ["[1, 2]", "{\"a\": 1.5}", "{\"a\": \"high\"}", "{\"a\": true}", "not json"])
def test_bad_overrides_file_is_refused(tmp_path, content):
    path = tmp_path / "overrides.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="overrides"):
        read_overrides(path)


def test_policy_follows_the_settings():
    assert not AutoReplyPolicy.from_settings(Settings(auto_reply="off")).enabled
    policy = AutoReplyPolicy.from_settings(Settings(auto_reply_calibration=None))  # uncalibrated: 0.9
    assert policy.enabled and policy.min_score == 0.9


def test_curve_counts_sent_and_wrong():
    rows = [{"gold": "a", "intent": "a", "score": 0.95, "escalate": False},
            {"gold": "a", "intent": "b", "score": 0.92, "escalate": False},  # wrong, sent at 0.9
            {"gold": "c", "intent": "c", "score": 0.99, "escalate": True},  # escalated: not sent
            {"gold": "d", "intent": "d", "score": 0.5, "escalate": False}]
    at = {c["threshold"]: c for c in curve(rows, thresholds=(0.5, 0.9, 0.99))}
    assert (at[0.9]["auto_sent"], at[0.9]["wrong_intent"], at[0.9]["auto_share"]) == (2, 1, 0.5)
    assert at[0.9]["score_only_sent"] == 3
    assert (at[0.5]["auto_sent"], at[0.99]["auto_sent"]) == (3, 0)


# -- what the pages show: links, times, evidence ------------------------------------------------------------
from hypothesis import given, strategies as st  # noqa: E402

from agents.desk.present import dom_id, evidence_sentence, http_url, story_rows, time_tag  # noqa: E402


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
                                 "java\tscript:alert(1)", "data:text/html,<script>x</script>", "//evil.example/x",
                                 "/relative", "https://", "http:///x", "vbscript:x", "https://a b.example/"])
def test_only_absolute_http_urls_may_become_links(url):
    assert http_url(url) is None


def test_http_and_https_urls_are_kept_as_they_are():
    assert http_url("https://news.example/a?x=1&y=2#top") == "https://news.example/a?x=1&y=2#top"
    assert http_url("HTTP://news.example") == "HTTP://news.example"


@given(st.text(max_size=200))
def test_any_text_is_a_link_only_when_it_is_an_http_url(value):
    url = http_url(value)
    assert url is None or (url == value and value.lower().startswith(("http://", "https://")))


@given(st.text(max_size=200))
def test_a_time_tag_escapes_what_is_not_a_time(value):
    html = str(time_tag(value))
    assert "<" not in html.replace('<time class="when"', "").replace("</time>", "")
    assert '"' not in html.split(">", 1)[-1]  # no quote escapes into the text either


def test_a_time_tag_carries_iso_and_a_readable_utc_fallback():
    assert str(time_tag("2026-12-07T04:32:52.258000+00:00")) == (
        '<time class="when" datetime="2026-12-07T04:32:52.258000+00:00" title="2026-12-07T04:32:52.258000+00:00">'
        "07 Dec 2026 04:32 UTC</time>")
    assert "04:32 UTC" in str(time_tag("2026-12-07T05:32:00+01:00"))  # shown in UTC on the server


@given(st.text(max_size=100))
def test_dom_ids_are_fixed_form_whatever_the_message_id(value):
    assert dom_id(value).isalnum() and len(dom_id(value)) == 17


def test_the_statistics_read_as_one_sentence():
    payload = {"window": {"start": "2026-12-07T04:17:00+00:00", "end": "2026-12-07T04:32:00+00:00", "stories": 18,
                          "negatives": 14, "articles": 31, "outlets": 9, "tail": 2.3e-7},
               "baseline": {"expected_share": 0.12}}
    assert evidence_sentence(payload) == (
        "14 of 18 stories negative (78%) in the 15 min to 07 Dec 2026 04:32 UTC, against a usual 12% ± 8% "
        "(31 articles from 9 outlets; chance by luck p = 2e-07).")
    assert evidence_sentence({"conversation_id": "c"}) is None  # an escalation has no window


def test_story_rows_prefer_the_reading_toward_the_company():
    payload = {"stories": [{"article_id": "a1", "headline": "h", "url": "javascript:x", "outlets": ["o"],
                            "copies": 2, "negative": True, "time": "2026-12-07T04:32:00+00:00"},
                           {"article_id": "a2", "headline": "g", "url": "https://x.example", "negative": False}]}
    rows = story_rows(payload, {"a1": {"label": "negative", "score": -0.6, "toward": True},
                                "a2": {"label": "positive", "score": 0.5, "toward": False}})
    assert (rows[0].url, rows[0].sentiment, rows[0].toward, rows[0].copies) == (None, "negative", True, 2)
    assert (rows[1].url, rows[1].sentiment, rows[1].toward) == ("https://x.example", "positive", False)
