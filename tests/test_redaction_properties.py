"""Property tests of the redaction (schemas/redaction.py): identifiers written every way people type them
are replaced, near misses stay, and an over-long chat message is redacted in full before it is a dead letter."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import random
import re
import string
import time

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

from agents.dead_letters import MAX_REDACTED_CHARS, dead_letter_row, envelope, parse_batch
from agents.pipeline import Received
from schemas import redaction
from schemas.events import parse_chat
from schemas.redaction import CHUNK_CHARS, CHUNK_OVERLAP, IBAN_LENGTHS, redact, redact_long

examples = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text around an identifier: any characters but digits (so every digit of the output is the identifier's)
# and "@" (so nothing around it is an identifier): letters of any script, punctuation, spaces, line breaks,
# format characters (zero-width space, direction marks ...).
around = st.text(alphabet=st.characters(exclude_categories=("Nd", "Nl", "No", "Cs"), exclude_characters="@"),
                 max_size=40)


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# -- cards -------------------------------------------------------------------------------------------------

CARD_SEPARATORS = [" ", "-", ".", "/", "_", "\n", "\r\n", "  ", "     ", "\t", "\u00a0", " - ", " / ", "\u2013",
                   " \n ", "\u200b", "\u00ad", "\u200b ", " \u00ad"]


@st.composite
def card_numbers(draw) -> str:
    length = draw(st.integers(13, 19))
    body = draw(st.sampled_from("23456")) + draw(st.text(string.digits, min_size=length - 2, max_size=length - 2))
    number = body + luhn.calc_check_digit(body)
    assert luhn.is_valid(number)
    return number


@st.composite
def groups_of(draw, number: str) -> list[str]:
    """The number whole, in fours (a short last group joined to the one before), or in groups of 3 to 6."""
    how = draw(st.sampled_from(["whole", "fours", "any"]))
    if how == "whole":
        return [number]
    sizes, left = [], len(number)
    while left > 6:
        size = 4 if how == "fours" and left - 4 >= 3 else draw(st.integers(3, min(6, left - 3)))
        sizes.append(size)
        left -= size
    sizes.append(left)
    out, at = [], 0
    for size in sizes:
        out.append(number[at:at + size])
        at += size
    return out


@st.composite
def written_cards(draw) -> tuple[str, str]:
    number = draw(card_numbers())
    groups = draw(groups_of(number))
    written = groups[0] + "".join(draw(st.sampled_from(CARD_SEPARATORS)) + g for g in groups[1:])
    return number, written


@examples
@given(card=written_cards(), before=around, after=around,
       prefix=st.sampled_from(["", "", "card", "Card:", "Karte", "nr", "number", "n°", "№"]),
       suffix=st.sampled_from(["", "", "exp", "x", "thanks"]))
def test_property_a_card_written_any_way_becomes_a_placeholder(card, before, after, prefix, suffix):
    _, written = card
    out = redact(f"{before} {prefix}{written}{suffix} {after}")
    assert out == f"{before} {prefix}[CARD]{suffix} {after}"
    assert digits(out) == ""  # not a run of the card's digits left


@pytest.mark.parametrize("written", ["4111.1111.1111.1111", "4111/1111/1111/1111", "4111_1111_1111_1111",
                                     "4111\n1111\n1111\n1111", "4111   1111   1111   1111",
                                     "4111\u200b1111\u200b1111\u200b1111", "4111\u00ad1111\u00ad1111\u00ad1111",
                                     "4111\u200b1111 1111-1111", "card4111111111111111", "card4111 1111 1111 1111"])
def test_cards_with_other_separators_or_touching_letters(written):
    assert digits(redact(f"my {written} please")) == ""


# -- IBANs ---------------------------------------------------------------------------------------------------

def make_iban(country: str, rng: random.Random) -> str:
    """A valid IBAN of ``country`` from its registry structure, with mod 97-10 check digits (and the
    country's own check digits where stdnum checks them: drawn until valid)."""
    structure = stdnum_iban._ibandb.info(country)[0][1]["bban"]
    pools = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}
    for _ in range(20_000):
        bban = "".join(rng.choice(pools[kind]) for count, kind in re.findall(r"(\d+)!([nac])", structure)
                       for _ in range(int(count)))
        number = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
        if stdnum_iban.is_valid(number):
            assert len(number) == IBAN_LENGTHS[country]
            return number
    raise AssertionError(f"no valid {country} IBAN drawn")


COUNTRIES = sorted(IBAN_LENGTHS)  # every country in python-stdnum's IBAN registry
IBAN_SEPARATORS = [" ", "", ".", "\n", "  ", "-", " . ", "\r\n", " \n"]


@st.composite
def written_ibans(draw) -> tuple[str, str]:
    country = draw(st.sampled_from(COUNTRIES))
    number = make_iban(country, random.Random(draw(st.integers(0, 2**32))))
    cased = "".join(c.lower() if draw(st.booleans()) else c for c in number) if draw(st.booleans()) else (
        draw(st.sampled_from([str.upper, str.lower]))(number))
    parts = [cased[:2], cased[2:4]]
    rest = cased[4:]
    size = draw(st.sampled_from([4, 4, 0]))  # groups of four, or of sizes drawn one by one
    while rest:
        n = size or draw(st.integers(1, 8))
        parts.append(rest[:n])
        rest = rest[n:]
    written = parts[0] + draw(st.sampled_from(["", " ", ".", "\n", "  "])) + parts[1]
    written += "".join(draw(st.sampled_from(IBAN_SEPARATORS)) + p for p in parts[2:])
    return number, written


@examples
@given(iban=written_ibans(), before=around, after=around)
def test_property_an_iban_written_any_way_becomes_a_placeholder(iban, before, after):
    _, written = iban
    out = redact(f"{before} {written} {after}")
    assert out == f"{before} [IBAN] {after}"


@pytest.mark.parametrize("country", COUNTRIES)
def test_an_iban_of_every_country_stdnum_knows(country):
    number = make_iban(country, random.Random(country))
    spaced = f"{number[:2]} {number[2:4]} " + " ".join(number[i:i + 4] for i in range(4, len(number), 4))
    for written in (number, number.lower(), spaced, spaced.replace(" ", "."), spaced.replace(" ", "\n")):
        assert redact(f"to {written}, thanks") == "to [IBAN], thanks", written


# -- e-mail addresses ----------------------------------------------------------------------------------------

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
local_parts = st.lists(st.text(ATEXT, min_size=1, max_size=10), min_size=1, max_size=4).map(".".join).filter(
    lambda local: len(local) <= 64)
domains = st.builds("{}.{}".format, st.from_regex(r"[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?(\.[a-z0-9]{1,8}){0,2}",
                                                  fullmatch=True),
                    st.from_regex(r"[a-z]{2,8}", fullmatch=True))


@examples
@given(local=local_parts, domain=domains, before=around, after=around)
def test_property_an_email_with_any_rfc5322_local_part_becomes_a_placeholder(local, domain, before, after):
    out = redact(f"{before} {local}@{domain} {after}")
    assert out == f"{before} [EMAIL] {after}"


@pytest.mark.parametrize("address", ["a!b@example.com", "o'brien@example.ie", "{team}|ops@example.org",
                                     "x=y?z^w@example.net", "#1~%&*+/`@example.co.uk", "first.last!@example.de"])
def test_emails_with_every_atext_character(address):
    assert redact(f"write to {address} today") == "write to [EMAIL] today"


# -- phone numbers in international form -----------------------------------------------------------------------

REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r) is not None)


@examples
@given(region=st.sampled_from(REGIONS), international=st.booleans(), before=around, after=around)
def test_property_a_phone_number_in_international_form_becomes_a_placeholder(region, international, before, after):
    fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL if international else phonenumbers.PhoneNumberFormat.E164
    written = phonenumbers.format_number(phonenumbers.example_number(region), fmt)
    out = redact(f"{before} {written} {after}")
    assert out == f"{before} [PHONE] {after}", written


@pytest.mark.parametrize("region", REGIONS)
def test_the_example_number_of_every_region(region):
    for fmt in (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164):
        written = phonenumbers.format_number(phonenumbers.example_number(region), fmt)
        assert redact(f"call {written} now") == "call [PHONE] now"  # "+672 10 6609" is no spaced SSN


@pytest.mark.parametrize("text, expected", [("[ +247 62889", "[ [PHONE]"), ("( +44 20 7946 0958", "( [PHONE]"),
                                            ("[+44 20 7946 0958]", "[[PHONE]]"), ("+ +247 62889", "+ [PHONE]")])
def test_a_bracket_or_plus_before_a_number_stays(text, expected):
    assert redact(text) == expected


# -- US social security numbers written with spaces ----------------------------------------------------------

@examples
@given(area=st.integers(1, 899), group=st.integers(1, 99), serial=st.integers(1, 9999),
       space=st.sampled_from([" ", "\u00a0", "\u2009"]), before=around, after=around)
def test_property_an_ssn_written_with_spaces_becomes_a_placeholder(area, group, serial, space, before, after):
    written = f"{area:03d}{space}{group:02d}{space}{serial:04d}"
    assume(stdnum_ssn.is_valid(digits(written)))
    assert redact(f"{before} {written} {after}") == f"{before} [SSN] {after}"


# -- near misses stay ----------------------------------------------------------------------------------------

@st.composite
def luhn_invalid_numbers(draw) -> str:
    number = draw(st.sampled_from("123456789")) + draw(st.text(string.digits, min_size=15, max_size=15))
    assume(not luhn.is_valid(number))
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(number[i:i + 4] for i in range(0, 16, 4)) if sep else number


dates = st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31))  # a year of four digits
near_misses = st.one_of(
    st.builds("${:,}.{:02d}".format, st.integers(0, 10**9), st.integers(0, 99)),
    st.builds("{:,}.{:02d} EUR".format, st.integers(0, 10**9), st.integers(0, 99)),
    dates.map(lambda d: d.strftime("%d/%m/%Y")), dates.map(lambda d: d.isoformat()),
    dates.map(lambda d: d.strftime("%d.%m.%Y")), dates.map(lambda d: d.strftime("%B %d, %Y")),
    st.builds("ORD-{:08d}".format, st.integers(0, 10**8 - 1)),
    st.builds("ending {:04d}".format, st.integers(0, 9999)),
    luhn_invalid_numbers(),
)


@examples
@given(value=near_misses, before=around, after=around)
def test_property_near_misses_stay(value, before, after):
    text = f"{before} {value} {after}"
    assert redact(text) == text


@pytest.mark.parametrize("text", ["ORD-02400000 never arrived", "order #02400000", "ref INV/0412345678",
                                  "I paid $1,234.56", "card ending 1111", "ORD-12345678", "4111 1111 1111 1112"])
def test_near_misses_stay(text):
    assert redact(text) == text


@examples
@given(amount=near_misses, date=near_misses, reference=near_misses)
def test_property_near_misses_together_stay(amount, date, reference):
    text = f"I paid {amount} on {date}, reference {reference}, my card ending 1111."
    assert redact(text) == text


# -- over-long messages: redacted in full before they are dead letters ---------------------------------------

PLANTED = ["4111.1111.1111.1111", "4111/1111/1111/1111", "5555 5555 5555 4444", "card4111111111111111",
           "DE 89 3704 0044 0532 0130 00", "gb82.west.1234.5698.7654.32", "NL91\nABNA\n0417\n1643\n00",
           "jane!doe@example.org", "o'brien+bank@example.co.uk", "+44 20 7946 0958", "212 45 6781"]
FILLER = "The transfer has not arrived and nobody answers the phone, please help me. "  # no digit, no "@"


def over_long_chat(fill: int, planted=PLANTED) -> bytes:
    parts = []
    for value in planted:
        parts.append(FILLER * (fill // len(FILLER)) + FILLER[:fill % len(FILLER)])
        parts.append(value)
    return json.dumps({"id": "m1", "conversation_id": "c1", "text": " ".join(parts) + " " + FILLER}).encode()


def assert_no_raw_value(row: dict) -> None:
    stored = row["value"].decode("utf-8")
    sent = envelope(row)
    for text in (stored, base64.b64decode(json.loads(sent)["value_base64"]).decode("utf-8"), row["detail"],
                 sent.decode("utf-8")):
        assert "@" not in text, text
    payload = json.loads(stored)
    assert digits(stored) == "11"  # "m1" and "c1": not one digit of a card, an IBAN, a phone number or an SSN
    assert payload["text"].count("[CARD]") == 4 and payload["text"].count("[IBAN]") == 3
    assert payload["text"].count("[EMAIL]") == 2 and "[PHONE]" in payload["text"] and "[SSN]" in payload["text"]


def test_an_over_long_chat_message_is_dead_lettered_without_a_raw_identifier():
    value = over_long_chat(1_000)  # about 11,600 characters: refused by the parser (4,000), redacted in full
    assert 4_000 < len(value) <= MAX_REDACTED_CHARS
    valid, dead = parse_batch([Received("chat", 0, 7, b"m1", value, 1_700_000_000.0)], parse_chat, "chat")
    assert valid == [] and [row["reason"] for row in dead] == ["oversize"]
    assert_no_raw_value(dead[0])
    assert dead[0]["value_size"] == len(value)


@settings(examples, max_examples=40)
@given(fill=st.integers(CHUNK_CHARS - CHUNK_OVERLAP - 60, CHUNK_CHARS + 20))
def test_property_an_identifier_on_a_window_edge_is_redacted(fill):
    # the identifier starts `fill` characters into the text: across the first window's edge (4,000) or the
    # second window's start (3,000) for some
    for value in PLANTED:
        text = (FILLER * 60)[:fill] + " " + value + " " + FILLER * 60  # about 8,600 characters
        value_bytes = json.dumps({"id": "m1", "conversation_id": "c1", "text": text}).encode()
        row = dead_letter_row(Received("chat", 0, 7, b"m1", value_bytes, 1_700_000_000.0), "oversize", "too long")
        stored = json.loads(row["value"])["text"]
        assert digits(stored) == "" and "@" not in stored, value


@pytest.mark.parametrize("start", range(CHUNK_CHARS - CHUNK_OVERLAP - 30, CHUNK_CHARS + 5, 7))
def test_redact_long_takes_an_identifier_across_each_window_edge(start):
    for value in PLANTED:
        text = "x " * (start // 2) + value + " y" * 3000
        assert digits(redact_long(text)) == "" and "@" not in redact_long(text), (start, value)


def test_a_chat_dead_letter_over_the_bound_keeps_only_its_digest_and_size():
    value = over_long_chat(1_600)  # about 18,000 characters: over the bound of 16,000
    assert len(value) > 16_000
    row = dead_letter_row(Received("chat", 0, 7, b"m1", value, 1_700_000_000.0), "oversize", "too long")
    assert row["value"] is None and row["value_size"] == len(value)
    assert row["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert "4111" not in envelope(row).decode() and "@" not in envelope(row).decode()


def test_a_crafted_chat_dead_letter_at_the_bound_is_redacted_in_bounded_time():
    # the slowest 4,000-character text for the recognizers, repeated up to the bound
    text = ("01 23 45 67 89, " * 1_000)[:MAX_REDACTED_CHARS - 60]
    value = json.dumps({"id": "m1", "conversation_id": "c1", "text": text}).encode()
    started = time.perf_counter()
    row = dead_letter_row(Received("chat", 0, 7, b"m1", value, 1_700_000_000.0), "oversize", "too long")
    assert row["value"] is not None
    assert time.perf_counter() - started < 5.0  # measured about 1 s on a busy 2-core machine


def test_a_recognizer_failure_drops_the_body(monkeypatch):
    def broken(text):
        raise RuntimeError(text)

    monkeypatch.setattr(redaction, "PASSES", [(p, broken if p == redaction.IBAN else f, n)
                                              for p, f, n in redaction.PASSES])
    value = over_long_chat(100)
    row = dead_letter_row(Received("chat", 0, 7, b"m1", value, 1_700_000_000.0), "oversize", "too long")
    assert row["value"] is None and "could not be redacted" in row["detail"]
