"""Unit tests of the desk's parts that need no services: password hashing, CSRF tokens, the sign-in
rate limit, and the auto-reply policy (with its evaluation curve)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import unicodedata
from datetime import UTC, datetime

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


def test_the_report_lists_the_wrong_intents_a_threshold_sends():
    from agents.desk.evaluate_auto_reply import wrong_sent

    rows = [{"text": "t1", "gold": "a", "intent": "b", "score": 0.93, "escalate": False},
            {"text": "t2", "gold": "a", "intent": "c", "score": 0.97, "escalate": False},
            {"text": "t3", "gold": "a", "intent": "b", "score": 0.99, "escalate": True},  # escalated: not sent
            {"text": "t4", "gold": "a", "intent": "a", "score": 0.99, "escalate": False},  # right
            {"text": "t5", "gold": "a", "intent": "b", "score": 0.80, "escalate": False}]  # under the threshold
    assert [m["text"] for m in wrong_sent(rows, 0.9)] == ["t2", "t1"]
    assert wrong_sent(rows, 0.9)[0] == {"text": "t2", "intent": "c", "gold": "a", "score": 0.97}


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


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.timezones(), allow_imaginary=False))
def test_a_time_tag_holds_any_stored_moment_as_its_utc_iso_and_reads_it_in_utc(moment):
    """The database hands the pages datetimes (not strings), in whatever zone the session has."""
    tag = re.fullmatch(r'<time class="when" datetime="([^"]+)" title="\1">([^<]+)</time>', str(time_tag(moment)))
    assert tag is not None, str(time_tag(moment))
    iso, shown = tag.groups()
    utc = moment.astimezone(UTC)  # compared in UTC: an ambiguous local time never equals another zone's (PEP 495)
    assert datetime.fromisoformat(iso) == utc and iso.endswith("+00:00")  # the same instant, in UTC
    assert datetime.strptime(shown, "%d %b %Y %H:%M UTC") == utc.replace(second=0, microsecond=0, tzinfo=None)


# An HTML id that is also a CSS identifier as it stands: templates target it as hx-target="#claim-<id>".
ID_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


# any code point, with lone surrogates (what JSON's "\ud800" decodes to) often rather than by rare chance
# (a list joined: st.text would merge the two alphabets into one and draw surrogates as rarely as before)
ANY_TEXT = st.lists(st.characters(exclude_categories=()) | st.characters(categories=["Cs"]), max_size=100).map("".join)


@given(ANY_TEXT)
def test_dom_ids_are_fixed_form_whatever_the_message_id(value):
    assert ID_TOKEN.fullmatch(dom_id(value)) and len(dom_id(value)) == 17
    assert dom_id(value) == dom_id(value)


# another message id close to one: ids are exact strings, so case, spaces and Unicode normal form tell them apart
NEAR = [str.lower, str.upper, str.strip, lambda v: f"{v} ", lambda v: unicodedata.normalize("NFD", v),
        lambda v: unicodedata.normalize("NFKC", v)]


@given(st.text(max_size=100), st.text(max_size=100), st.sampled_from(NEAR))
def test_distinct_message_ids_get_distinct_dom_ids(a, other, near):
    for b in (other, near(a)):
        if b != a:
            assert dom_id(a) != dom_id(b), (a, b)


def test_a_dom_id_is_the_same_in_every_process():
    """A page and the fragments that later replace its parts (a claim, a decision) can come from different desk
    processes, and tests find the ids in pages: the id must not depend on the process (as Python's hash() does)."""
    ids = ["web-1", "conv 7/msg <8>", "Zoë's café"]
    script = "import sys; from agents.desk.present import dom_id; print(*(dom_id(v) for v in sys.argv[1:]))"
    runs = [subprocess.run([sys.executable, "-c", script, *ids], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout.split() for seed in ("1", "2")]
    assert runs[0] == runs[1] == [dom_id(v) for v in ids]


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
