"""Personal data out of customer text, at the edge: identifiers become typed placeholders.

``redact(text)`` replaces

- card numbers (13 to 19 digits, written whole or in groups of 3 to 6 separated by a space or a
  dash, first digit 2 to 6 as every payment-card issuer's is, Luhn-valid, not glued to a letter as
  in an IBAN or a reference code) by ``[CARD]``,
- IBANs (country-specific length and format, ISO 7064 mod 97-10 check digits) by ``[IBAN]``,
- e-mail addresses by ``[EMAIL]``,
- US social security numbers written ``AAA-GG-SSSS`` (valid area, group and serial) by ``[SSN]``,
- phone numbers that are valid numbers of their country (in international form for any country,
  in national form for ``PHONE_REGIONS``, the United Kingdom and the United States, and
  ``NATIONAL_REGIONS``, France, Ireland, the Netherlands, Switzerland and Australia) by ``[PHONE]``;
  an opening bracket the number does not close stays ("(07911 123456)" becomes "([PHONE])").

Near misses stay: amounts, dates, times, order and reference numbers, the last four digits of a
card, a 16-digit number that fails the Luhn check, an IBAN with wrong check digits. No banking77
message (13,083) is changed, and none of the 695 order numbers, invoice numbers and refund
amounts labelled in bitext's customer messages (the issuer-digit rule keeps 90 of them, 15-digit
order numbers that pass the Luhn check, from being taken for cards). On the fixed evaluation set of
``models/redaction_eval.py`` (437 planted identifiers, 262 near misses; ``python -m
models.redaction_eval``) recall and precision are 1.0 and no near miss is redacted.

The chat parser (``schemas/events.py``) applies it to every message's text before anything else
sees it, so storage, ``chat.replies``, alerts, logs and the generator's prompt only ever get the
redacted text; the dead letters redact a chat payload they keep (``agents/dead_letters.py``).

Libraries: the validation is python-stdnum's (``stdnum.luhn``, ``stdnum.iban``,
``stdnum.us.ssn``) and Google's libphonenumber port (``phonenumbers.PhoneNumberMatcher``, which
finds and validates numbers in free text with the country's own numbering plan and skips dates
and times); candidate spans are found with the bounded patterns below. Chosen over
presidio-analyzer's predefined recognizers (CreditCardRecognizer, IbanRecognizer,
EmailRecognizer, PhoneRecognizer, which call the same kind of checks and phonenumbers
themselves) because, measured on this machine (2 shared CPU cores; 1,000 banking77 test messages):

- presidio-analyzer installs spaCy, thinc, blis and their dependencies (about 390 MB of
  virtualenv against 55 MB for the two libraries here) and imports spaCy on import (1.2 s);
- its EmailRecognizer validates the domain with ``tldextract``, which fetches the public suffix
  list from the internet on first use: offline that is a connection error and a logged traceback
  before it falls back to its bundled copy;
- it takes 60-100 µs per banking77 message and about 2 ms when one identifier is appended to
  each, against about 2 µs and 0.1-0.3 ms here (patterns that cannot match skip the expensive
  recognizers); the worker redacts every chat message in the parse step, on its event loop;
- its PhoneRecognizer (leniency "possible") takes ``078-05-1120`` and ``555-123-4567`` for phone
  numbers; libphonenumber with leniency "valid", as here, does not.

Hostile input: ``redact`` never raises. The patterns are bounded (no nested unbounded
repetition, so no catastrophic backtracking), card windows are capped at 19 digits, and the
parser bounds a message to 4,000 characters: the worst 4,000-character texts crafted in
``tests/test_redaction.py`` (IBAN-like or phone-like tokens repeated) take up to about 0.15 s.
Should a recognizer still fail on some input, the text is masked coarsely instead (``mask``:
every run of 7 or more digits becomes ``[NUMBER]``, every word with an ``@`` becomes
``[EMAIL]``) and a warning without the text is logged: a redactor that fails open would leak. Redaction is idempotent: placeholders carry no
digit and no ``@``, and a text is redacted again until nothing changes (at most three rounds).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

log = logging.getLogger(__name__)

CARD, IBAN, EMAIL, PHONE, SSN, NUMBER = "[CARD]", "[IBAN]", "[EMAIL]", "[PHONE]", "[SSN]", "[NUMBER]"
PLACEHOLDERS = (CARD, IBAN, EMAIL, PHONE, SSN, NUMBER)

# Countries whose numbers are recognised in national form ("020 7946 0958", "(212) 555-0123"), each
# with a cheap pattern a text must match before libphonenumber (about 0.1 ms a text) looks at it.
# Numbers written with "+" or "00" and a country code are recognised for every country.
PHONE_REGIONS = {
    "GB": re.compile(r"(?<!\d)0\d|\+"),  # national numbers start with 0; "+" or "00" starts any country's
    "US": re.compile(r"(?<!\d)\(?[2-9]\d\d\)?[^\S\r\n]?[\-.]?[^\S\r\n]?[2-9]\d\d[^\S\r\n]?[\-.]?[^\S\r\n]?\d{4}(?!\d)"),
}
# More countries whose national numbers (trunk prefix 0, strict numbering plans) are recognised: read by
# libphonenumber in short windows (``_NATIONAL_WINDOW``: a 0 and 7 to 10 more digits, single separators),
# never over the whole text, so each adds little to the worst case. Germany, Italy, Austria, Spain and
# Poland are left out: their plans accept dates ("05.03.2021") and order numbers ("845288370") as numbers,
# and Belgium a US social security number's shape ("078-05-1120").
NATIONAL_REGIONS = ("FR", "IE", "NL", "CH", "AU")

_SPACE = r"[^\S\r\n]"  # one horizontal space of any kind (space, no-break space, thin space ...)
_DASH = r"[\-\u2010-\u2015\u2212]"
_SEP = rf"(?:{_SPACE}?{_DASH}{_SPACE}?|{_SPACE})"
# A whole run of digits and single separators (never a piece of a longer run or of a word).
_RUN_SEP = rf"(?:{_SPACE}|[\-./])"
_NATIONAL_WINDOW = re.compile(rf"(?<![\w+])(?<!\d{_RUN_SEP})\(?0(?:\)?{_SPACE}?[\-.]?{_SPACE}?\d){{7,10}}"
                              rf"(?!\w)(?!{_RUN_SEP}\d)")
# A run of digit groups joined by single separators; the card windows are looked for inside it.
_DIGIT_RUN = re.compile(rf"\d+(?:{_SEP}\d+)*")
_DIGIT_GROUP = re.compile(r"\d+")
_IBAN_START = re.compile(r"\b[A-Za-z]{2}[0-9]{2}")
_IBAN_GROUP = re.compile(rf"(?:{_SPACE}|{_DASH})?([A-Za-z0-9]+)")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_EMAIL = re.compile(
    r"[\w.%+\-]{1,64}@"  # the local part: at most 64 characters (RFC 5321), so a match is bounded
    r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.){1,8}"  # up to 8 domain labels, each ended by its dot
    r"[^\W\d_]{2,63}(?![\w\-])")  # the top-level domain: letters
_MASK_NUMBER = re.compile(rf"\d(?:{_SEP}?\d){{6,}}")
_MASK_EMAIL = re.compile(r"(?<!\S)[^\s@]*+@\S*")  # a word with an "@", matched from its start only: linear

MIN_CARD_DIGITS, MAX_CARD_DIGITS = 13, 19
MIN_IBAN_CHARS, MAX_IBAN_CHARS = 15, 34
MAX_ROUNDS = 3


def _ascii_digits(text: str) -> str:
    """Digits in any script as ASCII ("٤١١١" → "4111"), for the checksum libraries; other characters dropped."""
    return "".join(str(unicodedata.decimal(c)) for c in text if unicodedata.decimal(c, None) is not None)


def _replace(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


# -- one pass per kind: each returns the spans to replace, left to right, not overlapping -------------

def email_spans(text: str) -> list[tuple[int, int]]:
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text)]


def iban_spans(text: str) -> list[tuple[int, int]]:
    """An IBAN is a country code, two check digits and up to 30 letters and digits, often in groups of
    four: the longest run of groups from each start that stdnum accepts."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = _IBAN_START.search(text, pos)
        if start is None:
            return spans
        ends: list[tuple[int, str]] = []
        compact, at = start.group(), start.end()
        while True:
            group = _IBAN_GROUP.match(text, at)
            if group is None or len(compact) + len(group.group(1)) > MAX_IBAN_CHARS:
                break
            compact += group.group(1)
            at = group.end()
            ends.append((at, compact))
        found = None
        for end, compact in reversed(ends):
            if len(compact) >= MIN_IBAN_CHARS and stdnum_iban.is_valid(compact):
                found = end
                break
        if found is not None:
            spans.append((start.start(), found))
            pos = found
        else:
            pos = start.start() + 1


def _glued(text: str, at: int) -> bool:
    """Whether the character at ``at`` (beside a run of digits) is a letter."""
    return 0 <= at < len(text) and text[at].isalpha()


def card_spans(text: str) -> list[tuple[int, int]]:
    """Card numbers: a group of 13-19 digits, or consecutive groups of 3-6 digits adding up to 13-19,
    first digit 2-6, Luhn-valid (the longest such window from the leftmost start)."""
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end(), _ascii_digits(g.group())) for g in _DIGIT_GROUP.finditer(text, *run.span())]
        i = 0
        while i < len(groups):
            first = groups[i][2]
            windows = []
            if _glued(text, groups[i][0] - 1):  # "BE64295277816194": part of a word (an IBAN, a code), not a card
                i += 1
                continue
            if MIN_CARD_DIGITS <= len(first) <= MAX_CARD_DIGITS:  # written whole
                windows.append((i, first))
            elif 3 <= len(first) <= 6:  # written in groups
                digits = first
                for j in range(i + 1, len(groups)):
                    digits += groups[j][2]
                    if not 3 <= len(groups[j][2]) <= 6 or len(digits) > MAX_CARD_DIGITS:
                        break
                    if len(digits) >= MIN_CARD_DIGITS:
                        windows.append((j, digits))
            found = next((j for j, digits in reversed(windows) if digits[0] in "23456" and luhn.is_valid(digits)
                          and not _glued(text, groups[j][1])), None)
            if found is None:
                i += 1
                continue
            spans.append((groups[i][0], groups[found][1]))
            i = found + 1
    return spans


def ssn_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _SSN.finditer(text)
            if stdnum_ssn.is_valid(_ascii_digits(m.group()))]


def _without_open_bracket(text: str, start: int, end: int) -> tuple[int, int]:
    """A span without a leading "(" it does not close ("(+44 20 7946 0958)" keeps its brackets around the placeholder)."""
    if text[start] == "(" and text.count("(", start, end) > text.count(")", start, end):
        start += 1
    return start, end


def phone_spans(text: str) -> list[tuple[int, int]]:
    """Valid phone numbers (libphonenumber's VALID leniency) for each region, merged."""
    spans: set[tuple[int, int]] = set()
    for region, worth_a_look in PHONE_REGIONS.items():
        if not worth_a_look.search(text):
            continue
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            spans.add(_without_open_bracket(text, match.start, match.end))
    for window in _NATIONAL_WINDOW.finditer(text):
        for region in NATIONAL_REGIONS:
            for match in phonenumbers.PhoneNumberMatcher(window.group(), region, leniency=phonenumbers.Leniency.VALID):
                spans.add(_without_open_bracket(text, window.start() + match.start, window.start() + match.end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


_DIGITS = re.compile(r"\d")
# In this order: an e-mail may hold digits, an IBAN holds digit groups a card window could take.
PASSES: list[tuple[str, Callable[[str], list[tuple[int, int]]], int]] = [
    (EMAIL, email_spans, 0), (IBAN, iban_spans, 7), (CARD, card_spans, MIN_CARD_DIGITS),
    (SSN, ssn_spans, 9), (PHONE, phone_spans, 7),
]


def mask(text: str) -> str:
    """The coarse, linear-time redaction: every run of 7 or more digits (separators between them allowed)
    becomes ``[NUMBER]`` and every word with an ``@`` becomes ``[EMAIL]``. For when ``redact`` cannot be
    used or trusted: a recognizer failed, or a text is too long to spend the full recognizers on."""
    return _MASK_NUMBER.sub(NUMBER, _MASK_EMAIL.sub(EMAIL, text))


def _one_round(text: str) -> str:
    digits = len(_DIGITS.findall(text))
    for placeholder, spans, min_digits in PASSES:
        if digits < min_digits:
            continue
        try:
            text = _replace(text, spans(text), placeholder)
        except Exception as exc:  # noqa: BLE001 - a recognizer bug must neither stop the message nor leak it
            log.warning("redaction: the %s recognizer failed (%s); masking every long number and address",
                        placeholder, type(exc).__name__)
            return mask(text)
    return text


def redact(text: str) -> str:
    """``text`` with card numbers, IBANs, e-mail addresses, SSNs and phone numbers replaced by placeholders."""
    if not isinstance(text, str):
        raise TypeError(f"redact() takes a str, not {type(text).__name__}")
    try:
        for _ in range(MAX_ROUNDS):
            redacted = _one_round(text)
            if redacted == text:
                return text
            text = redacted
        return text
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError on a huge text: mask, never raise or leak
        log.warning("redaction failed (%s); masking every long number and address", type(exc).__name__)
        return mask(text)
