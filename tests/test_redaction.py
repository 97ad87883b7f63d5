"""Personal data redacted at the edge: the recognizers, their near misses, hostile text, the chat parser,
the dead letters, and what reaches the generator's prompt."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import logging
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import luhn

from agents.dead_letters import dead_letter_row, envelope
from agents.pipeline import Received
from schemas import redaction
from schemas.events import InvalidEvent, parse_chat
from schemas.redaction import mask, redact

# -- what is redacted, what stays ------------------------------------------------------------------------

IDENTIFIERS = [  # (text, the raw value, its placeholder)
    ("my card 4111 1111 1111 1111 was charged twice", "4111 1111 1111 1111", "[CARD]"),
    ("card number 4111-1111-1111-1111 please block it", "4111-1111-1111-1111", "[CARD]"),
    ("it's 5555555555554444, expiry next year", "5555555555554444", "[CARD]"),
    ("amex 3782 822463 10005 declined", "3782 822463 10005", "[CARD]"),
    ("card 4111 – 1111 – 1111 – 1111", "4111 – 1111 – 1111 – 1111", "[CARD]"),
    ("card ４１１１ １１１１ １１１１ １１１１ (typed on my phone)", "４１１１ １１１１ １１１１ １１１１", "[CARD]"),
    ("send it to GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32", "[IBAN]"),
    ("IBAN: DE89370400440532013000.", "DE89370400440532013000", "[IBAN]"),
    ("my iban is fr14 2004 1010 0505 0001 3m02 606", "fr14 2004 1010 0505 0001 3m02 606", "[IBAN]"),
    ("NL91ABNA0417164300 is my Dutch account", "NL91ABNA0417164300", "[IBAN]"),
    ("write to jane.doe+bank@example.co.uk today", "jane.doe+bank@example.co.uk", "[EMAIL]"),
    ("Zoë.Müller@exämple.de hat geschrieben", "Zoë.Müller@exämple.de", "[EMAIL]"),
    ("mail:J_SMITH99@Mail.Example.COM.", "J_SMITH99@Mail.Example.COM", "[EMAIL]"),
    ("call me on 07911 123456 after six", "07911 123456", "[PHONE]"),
    ("office +44 20 7946 0958, ask for Sam", "+44 20 7946 0958", "[PHONE]"),
    ("our landline 020 7946 0958", "020 7946 0958", "[PHONE]"),
    ("US number (212) 555-0123 works", "(212) 555-0123", "[PHONE]"),
    ("or +1 212 555 0123", "+1 212 555 0123", "[PHONE]"),
    ("Paris: +33 1 42 68 53 00", "+33 1 42 68 53 00", "[PHONE]"),
    ("ou au 06 12 34 56 78 le soir", "06 12 34 56 78", "[PHONE]"),
    ("Dublin office 01 234 5678", "01 234 5678", "[PHONE]"),
    ("Sydney (02) 9374 4000, ask for Sam", "(02) 9374 4000", "[PHONE]"),
    ("AU mobile 0412 345 678", "0412 345 678", "[PHONE]"),
    ("Zürich 044 668 18 00", "044 668 18 00", "[PHONE]"),
    ("my mobile (+44 7911 123456) was stolen", "+44 7911 123456", "[PHONE]"),  # the brackets stay
    ("my mobile (07911 123456) was stolen", "07911 123456", "[PHONE]"),
    ("my SSN is 212-45-6781", "212-45-6781", "[SSN]"),
]
NEAR_MISSES = [
    "I paid £1,234.56 on 12/03/2024 at 14:30",
    "the transfer of 250000 EUR on 2024-03-12 has not arrived",
    "my card ending in 1234 was declined",
    "last four digits 4242, expiry 09/27",
    "order 1234567890123456 is missing",  # 16 digits, Luhn-invalid
    "card 4111 1111 1111 1112 was charged",  # a card number with one digit wrong
    "ref 784512, order #A12-3456, transaction 4820195",
    "tracking number 9400111899223344556677",
    "reference 20231105-0042, case 77-1234",
    "IBAN GB83 WEST 1234 5698 7654 32 (a digit wrong)",
    "my account 12345678 and sort code 12-34-56",
    "I was charged 3 times: 9.99, 19.99 and 109.99",
    "user@localhost and @handle and a@b",
    "SSN 078-05-1120 is the famous invalid one",
    "call 555-123-4567",
    "version 1.2.3.4 of the app, build 20240312",
    "IBAN BE64295277816194 (a digit wrong; its last 14 digits pass the Luhn check)",
    "account DK01 4562 0207 4041 30 rejected",  # a bad IBAN whose groups hold a Dutch-looking number
    "card 6011 4258 0975 8333 was charged",  # Luhn-invalid; "0975 8333" alone would be a phone number
    "payment on 05.03.2021, order 845288370",  # a date and an order number some countries' plans accept
]


@pytest.mark.parametrize("text, raw, placeholder", IDENTIFIERS, ids=[i[2] + str(n) for n, i in enumerate(IDENTIFIERS)])
def test_identifiers_become_typed_placeholders(text, raw, placeholder):
    out = redact(text)
    assert raw not in out
    assert out == text.replace(raw, placeholder)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stay(text):
    assert redact(text) == text


def test_several_identifiers_in_one_message():
    text = ("Hi, card 4111 1111 1111 1111 and IBAN DE89 3704 0044 0532 0130 00, reach me at a.b@example.org "
            "or 07911 123456. Order 784512, £12.50 on 03/11/2024.")
    assert redact(text) == ("Hi, card [CARD] and IBAN [IBAN], reach me at [EMAIL] or [PHONE]. "
                            "Order 784512, £12.50 on 03/11/2024.")


def test_cards_side_by_side_are_two_cards():
    # one 32-digit window would pass Luhn too: a card is at most 19 digits
    assert redact("cards 4111 1111 1111 1111 5555 5555 5555 4444") == "cards [CARD] [CARD]"


def test_a_recognizer_that_fails_masks_coarsely_and_logs_no_text(monkeypatch, caplog):
    def broken(text):
        raise RuntimeError(f"boom on {text}")

    monkeypatch.setattr(redaction, "PASSES", [(p, broken if p == redaction.PHONE else f, n)
                                              for p, f, n in redaction.PASSES])
    with caplog.at_level(logging.WARNING, logger="schemas.redaction"):
        out = redact("call 07911 123456 or write to x@example.org, order 784512")
    assert out == "call [NUMBER] or write to [EMAIL], order 784512"
    assert "recognizer failed" in caplog.text and "07911" not in caplog.text


# -- hostile text: never raises, idempotent, bounded time, planted identifiers never survive -------------

PII_ALPHABET = "0123456789  -+@.()/_:abcdeGBDEWSTxyz\u00a0\u2013\n٤４"
any_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=PII_ALPHABET, max_size=200),
    st.lists(st.one_of(st.text(alphabet=PII_ALPHABET, max_size=20), st.sampled_from(
        ["4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "a@b.co", "+44 20 7946 0958", "212-45-6781",
         "[CARD]", "[EMAIL]", "\ud800", "\udfff", "\x00", "\u202e"])), max_size=12).map("".join),
)
property_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@property_settings
@given(text=any_text)
def test_property_any_text_is_redacted_without_error_and_idempotently(text):
    out = redact(text)
    assert isinstance(out, str)
    assert redact(out) == out


@st.composite
def cards(draw):
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "6011", "35"]))
    body = prefix + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=15 - len(prefix),
                                          max_size=15 - len(prefix))))
    number = body + luhn.calc_check_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(number[i:i + 4] for i in range(0, 16, 4)) if sep else number


@st.composite
def ibans(draw):
    country, bban = draw(st.sampled_from([("GB", "WEST" + "0" * 14), ("DE", "0" * 18), ("NL", "ABNA" + "0" * 10)]))
    digits = draw(st.lists(st.sampled_from("0123456789"), min_size=len(bban), max_size=len(bban)))
    bban = "".join(c if c.isalpha() else d for c, d in zip(bban, digits))
    number = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4)) if draw(st.booleans()) else number


emails = st.builds("{}@{}.{}".format, st.from_regex(r"[a-z][a-z0-9._+-]{0,15}[a-z0-9]", fullmatch=True),
                   st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True),
                   st.from_regex(r"[a-z]{2,6}", fullmatch=True))


@property_settings
@given(before=any_text, after=any_text, card=cards(), account=ibans(), email=emails)
def test_property_planted_card_iban_and_email_never_survive(before, after, card, account, email):
    out = redact(f"{before} {card} {after} {account} . {email} {before}")
    assert card not in out and account not in out and email not in out
    digits = re.sub(r"\D", "", out)
    assert re.sub(r"\D", "", card) not in digits and re.sub(r"\W", "", account) not in re.sub(r"\W", "", out)


WORST_CASES = {  # crafted 4,000-character texts (the parser's bound), each aimed at one recognizer
    "digit groups": "1234 " * 800, "card-like groups": "4111 " * 800, "single digits": "1 " * 2000,
    "card runs": "4111 1111 1111 1111 " * 200,
    "iban starts": "GB82 " * 800, "iban groups": "GB82 1234 ABCD " * 266, "at signs": "a@" * 2000,
    "long local parts": ("a." * 30 + "@") * 65, "many labels": "a@" + "b." * 1998, "gb numbers": "0123 " * 800,
    "us numbers": "(212) 555-0123 " * 266, "plus signs": "+1 " * 1333, "ssn": "212-45-6781 " * 333,
    "fullwidth digits": "４１１１ " * 800,
    "national windows": "01 23 45 67 89, " * 250, "bracketed national numbers": "(02) 1234 5678 " * 266,
    "zero pairs": "01 " * 1333,
}


@pytest.mark.parametrize("name", WORST_CASES)
def test_worst_case_texts_take_bounded_time(name):
    text = WORST_CASES[name]
    assert len(text) <= 4000
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 1.0  # measured at most about 0.12 s here, on a busy machine


def test_redaction_cost_per_banking77_message(data_dir):
    with open(data_dir / "banking77" / "test.csv", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:1000]
    planted = [f"{t} card 4111 1111 1111 1111, call 020 7946 0958" for t in texts]
    for batch, bound in ((texts, 200e-6), (planted, 5e-3)):  # measured about 2 µs and 0.15 ms a message
        started = time.perf_counter()
        for text in batch:
            redact(text)
        assert (time.perf_counter() - started) / len(batch) < bound
    assert all("4111" not in redact(t) for t in planted[:50])


def test_customer_messages_lose_nothing_but_identifiers(data_dir):
    """No banking77 message holds an identifier; bitext's labelled order and invoice numbers and refund amounts
    (near misses: 15-digit order numbers among them, some Luhn-valid) all stay."""
    with open(data_dir / "banking77" / "test.csv", newline="") as f:
        banking = [row["text"] for row in csv.DictReader(f)]
    assert [t for t in banking if redact(t) != t] == []
    path = data_dir / "bitext_customer_support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
    with open(path, newline="") as f:
        labelled = [row for row in csv.DictReader(f) if row["entity_type"] in ("order_id", "invoice_id", "refund_amount")]
    assert len(labelled) > 600
    assert [r["entity_value"] for r in labelled if r["entity_value"] not in redact(r["instruction"])] == []


def test_mask_is_coarse_and_linear():
    assert mask("card 4111 1111 1111 1111, order 784512, x@y.z") == "card [NUMBER], order 784512, [EMAIL]"
    started = time.perf_counter()
    mask("a" * 60_000 + " @")
    mask("1-" * 30_000)
    assert time.perf_counter() - started < 1.0


# -- at the edge: the chat parser ------------------------------------------------------------------------

def chat(text: str, **extra) -> bytes:
    return json.dumps({"id": "m1", "conversation_id": "c1", "text": text, **extra}).encode()


def test_the_chat_parser_redacts_the_text():
    event = parse_chat(chat("Card 4111 1111 1111 1111 lost! Mail jane@example.org", customer_id="cust-9"))
    assert event.text == "Card [CARD] lost! Mail [EMAIL]"
    assert event.customer_id == "cust-9"


def test_the_length_bound_holds_before_redaction():
    # 5,100 characters that would redact to 2,100: still refused, so redaction never reads an unbounded text
    with pytest.raises(InvalidEvent) as error:
        parse_chat(chat("4111111111111111 " * 300))
    assert error.value.reason == "oversize"


class FakeGenerator:
    """Records the prompts it is given; completes each with a fixed restatement."""

    source = "fake"

    def __init__(self):
        self.prompts: list[str] = []

    def prompt(self, system: str, user: str) -> str:
        return f"<system>{system}</system><user>{user}</user>"

    def generate(self, prompts, **kwargs):
        self.prompts += prompts
        return [" you lost your card." for _ in prompts]


def test_the_generators_prompt_gets_the_redacted_text():
    from models.replies import ReplyComposer

    event = parse_chat(chat("I lost my card 4111-1111-1111-1111, write to me at j.smith@example.com"))
    generator = FakeGenerator()
    ReplyComposer(retriever=None, generator=generator).openings([event.text], [[]])
    assert len(generator.prompts) == 1
    assert "[CARD]" in generator.prompts[0] and "[EMAIL]" in generator.prompts[0]
    assert "4111" not in generator.prompts[0] and "j.smith" not in generator.prompts[0]


class FakeGeneratorWithAPromptLog:
    """Stands in for a ReplyGenerator's own state: only the prompt log the test hook writes to."""

    def __init__(self, prompt_log):
        self.prompt_log = prompt_log


def test_the_prompt_log_test_hook_appends_each_prompt_as_one_json_line(tmp_path):
    from models.generator import ReplyGenerator

    log_file = tmp_path / "prompts.jsonl"
    ReplyGenerator.record_prompts(FakeGeneratorWithAPromptLog(None), ["not written"])
    assert not log_file.exists()
    hook = FakeGeneratorWithAPromptLog(log_file)
    ReplyGenerator.record_prompts(hook, ["<|im_start|>user\nCard [CARD]\nsecond line<|im_end|>", "two"])
    ReplyGenerator.record_prompts(hook, ["three \u202e"])
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == ["<|im_start|>user\nCard [CARD]\nsecond line<|im_end|>", "two",
                                                    "three \u202e"]


# -- dead letters: a chat payload is redacted before it is stored or produced ---------------------------

def dead(value: bytes | None, topic: str = "chat", detail: str = "bad") -> dict:
    return dead_letter_row(Received(topic, 0, 7, b"m1", value, 1_700_000_000.0), "invalid_field", detail)


def test_a_chat_dead_letter_keeps_its_json_structure_redacted():
    value = json.dumps({"id": "m1", "conversation_id": "c1", "text": "card 4111 1111 1111 1111",
                        "ts": "yesterday", "extra": [{"mail": "a.b@example.org"}, 5, None]}).encode()
    row = dead(value, detail="text: card 4111111111111111 refused")
    assert json.loads(row["value"]) == {"id": "m1", "conversation_id": "c1", "text": "card [CARD]",
                                        "ts": "yesterday", "extra": [{"mail": "[EMAIL]"}, 5, None]}
    assert row["detail"] == "text: card [CARD] refused"
    assert row["value_size"] == len(value)
    sent = json.loads(envelope(row))
    assert b"4111" not in base64.b64decode(sent["value_base64"]) and "4111" not in sent["detail"]


def test_a_chat_dead_letter_that_is_not_json_keeps_its_bytes_but_the_identifiers():
    value = b'{"id": "m1", "text": "card 4111 1111 1111 1111 \xff\xfe mail a@b.co'
    assert dead(value)["value"] == b'{"id": "m1", "text": "card [CARD] \xff\xfe mail [EMAIL]'


def test_a_chat_dead_letter_over_the_bound_is_dropped_keeping_its_digest_and_size():
    value = json.dumps({"id": "m1", "conversation_id": "c1",
                        "text": "card 4111 1111 1111 1111 " * 4000}).encode()  # 100 KB: oversize
    row = dead(value)
    assert row["value"] is None
    assert row["value_size"] == len(value) and row["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert row["detail"].startswith("body dropped (") and "4111" not in row["detail"]
    sent = json.loads(envelope(row))
    assert sent["value_base64"] == "" and "4111" not in json.dumps(sent)
    value = b"x" * 70_000 + b" 4111 1111 1111 1111"
    assert dead(value)["value"] is None


def test_a_crafted_chat_dead_letter_costs_no_more_than_a_few_messages():
    # 60 KB of IBAN-like tokens: over the bound, dropped unread
    value = json.dumps({"id": "m1", "conversation_id": "c1", "text": "GB82 " * 12_000}).encode()
    started = time.perf_counter()
    assert dead(value)["value"] is None
    assert time.perf_counter() - started < 1.0


def test_news_dead_letters_keep_their_bytes():
    value = b'{"id": "n1", "text": "card 4111 1111 1111 1111", "published_at": "nope"}'
    assert dead(value, topic="news", detail="card 4111111111111111")["value"] == value
    assert dead(value, topic="news", detail="card 4111111111111111")["detail"] == "card 4111111111111111"


@property_settings
@given(value=st.one_of(st.binary(max_size=300), any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
                       st.recursive(st.none() | st.integers() | any_text, lambda inner: st.lists(inner, max_size=3)
                                    | st.dictionaries(any_text, inner, max_size=3), max_leaves=6)
                       .map(lambda o: json.dumps(o).encode())),
       card=cards())
def test_property_any_chat_payload_becomes_a_dead_letter_without_the_card(value, card):
    row = dead(value + b" " + card.encode() + b" ")
    assert card.encode() not in row["value"]
    json.loads(envelope(row))
