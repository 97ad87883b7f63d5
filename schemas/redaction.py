"""Personal data out of customer text, at the edge: identifiers become typed placeholders.

``redact(text)`` replaces

- card numbers (13 to 19 digits, written whole or in groups of 3 or more, first digit 2 to 6 as every
  payment-card issuer's is, Luhn-valid) by ``[CARD]``; between the groups a run of up to 8 spaces, or
  one dash, dot, slash, underscore or line break with up to 8 spaces either side
  (``4111.1111.1111.1111``, ``4111/1111/1111/1111``, ``4111_1111 ...``); a card may touch a word
  (``card4111111111111111``) but not a code: digits glued to an IBAN country code that starts a word
  (``BE64295277816194``), or to letters glued to digits in turn (an IBAN's account number, a reference),
  or following a "+" (an international phone number) are no card,
- IBANs (country-specific length and format from python-stdnum's IBAN registry, ISO 7064 mod 97-10 check
  digits) in any case, with spaces, dashes, dots or line breaks between the groups and after the country
  code (``DE 89 3704 ...``, ``de89.3704. ...``) by ``[IBAN]``,
- e-mail addresses, their local part of RFC 5322's atext (letters, digits, ``!#$%&'*+/=?^_`{|}~-``) and
  dots, by ``[EMAIL]``,
- US social security numbers written ``AAA-GG-SSSS`` or ``AAA GG SSSS`` (valid area, group and serial;
  the spaced form not part of a longer run of digit groups nor after a "+") by ``[SSN]``,
- phone numbers that are valid numbers of their country (in international form for any country,
  in national form for ``PHONE_REGIONS``, the United Kingdom and the United States, and
  ``NATIONAL_REGIONS``, France, Ireland, the Netherlands, Switzerland and Australia) by ``[PHONE]``;
  an opening bracket the number does not close stays ("(07911 123456)" becomes "([PHONE])").

Unicode format characters (category Cf: zero-width space U+200B, soft hyphen U+00AD, joiners, direction
marks, the byte order mark ...) are invisible, so the recognizers read the text without them (``_view``):
``4111.1111.1111.1111`` with a zero-width space for each dot is a card. Those inside an identifier go
with it; the others stay where they were (an emoji's zero-width joiner, a right-to-left mark), so a text
without identifiers comes back as it was.

Near misses stay: amounts, dates, times, order and reference numbers, the last four digits of a
card, a 16-digit number that fails the Luhn check, an IBAN with wrong check digits. No banking77
message (13,083) is changed, and none of the 695 order numbers, invoice numbers and refund
amounts labelled in bitext's customer messages (the issuer-digit rule keeps 90 of them, 15-digit
order numbers that pass the Luhn check, from being taken for cards). On the fixed evaluation set of
``models/training/redaction_eval.py`` (558 planted identifiers, 262 near misses; ``sentinel
eval-redaction``) recall and precision are 1.0 and no near miss is redacted;
``tests/test_redaction_properties.py`` draws cards, IBANs of every country stdnum knows, e-mail
addresses, international phone numbers of every region and spaced SSNs written every way above.

The chat parser (``schemas/events.py``) applies it to every message's text before anything else
sees it, so storage, ``chat.replies``, alerts, logs and the generator's prompt only ever get the
redacted text; the dead letters redact a chat payload they keep (``agents/dead_letters.py``), in full
whatever its length up to their bound (``redact_long``: windows of ``CHUNK_CHARS`` overlapping by
``CHUNK_OVERLAP``, so an identifier on a window's edge lies whole in the next window).

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
repetition, separators of at most 8 spaces, so no catastrophic backtracking), card windows are capped at
19 digits, an IBAN is read only as far as its country's length, and the parser bounds a message to 4,000
characters: the worst 4,000-character texts crafted in ``tests/test_redaction.py`` (phone-like windows
repeated) take up to about 0.2 s. Should a recognizer still fail on some input, the text is masked
coarsely instead (``mask``: every run of 7 or more digits becomes ``[NUMBER]``, every word with an ``@``
becomes ``[EMAIL]``) and a warning without the text is logged: a redactor that fails open would leak
(``redact_long`` raises ``RedactionError`` instead: the dead letters then drop the text). Redaction is
idempotent: placeholders carry no digit and no ``@``, and the recognizers run again on their own output
until they find nothing new (at most three rounds).
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from bisect import bisect_right
from collections.abc import Callable

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn, numdb
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

# Unicode format characters (category Cf: zero-width space and joiners, soft hyphen, direction marks and
# overrides, byte order mark ...): invisible, so the recognizers read the text without them.
_FORMAT_CHARS = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
_FORMAT = re.compile("[" + "".join(re.escape(chr(c)) for c in _FORMAT_CHARS) + "]+")

_SPACE = r"[^\S\r\n]"  # one horizontal space of any kind (space, no-break space, thin space ...)
_DASH = r"[\-\u2010-\u2015\u2212]"
_SEP = rf"(?:{_SPACE}?{_DASH}{_SPACE}?|{_SPACE})"
_BREAK = r"(?:\r\n|[\r\n])"
# Between the groups of a card: a run of up to 8 spaces, or one dash, dot, slash, underscore or line break
# with up to 8 spaces either side (never empty, so a run of groups cannot be split two ways).
_CARD_SEP = rf"(?:{_SPACE}{{1,8}}|{_SPACE}{{0,8}}(?:{_DASH}|[./_]|{_BREAK}){_SPACE}{{0,8}})"
# Between the groups of an IBAN (its country code and check digits too): the same, without slash and
# underscore, or nothing.
_IBAN_SEP = rf"(?:{_SPACE}{{0,8}}(?:(?:{_DASH}|\.|{_BREAK}){_SPACE}{{0,8}})?)"
# A whole run of digits and single separators (never a piece of a longer run or of a word).
_RUN_SEP = rf"(?:{_SPACE}|[\-./])"
_NATIONAL_WINDOW = re.compile(rf"(?<![\w+])(?<!\d{_RUN_SEP})\(?0(?:\)?{_SPACE}?[\-.]?{_SPACE}?\d){{7,10}}"
                              rf"(?!\w)(?!{_RUN_SEP}\d)")
# A run of digit groups joined by separators; the card windows are looked for inside it.
_DIGIT_RUN = re.compile(rf"\d+(?:{_CARD_SEP}\d+)*")
_DIGIT_GROUP = re.compile(r"\d+")
_IBAN_START = re.compile(rf"\b([A-Za-z]{{2}}){_IBAN_SEP}([0-9]{{2}})")
_IBAN_GROUP = re.compile(rf"{_IBAN_SEP}([A-Za-z0-9]+)")
# The length of each country's IBAN, from python-stdnum's copy of the IBAN registry.
IBAN_LENGTHS = {country: 4 + sum(int(n) for n in re.findall(r"(\d+)!", props.get("bban", "")))
                for _, country, _, props, _ in numdb.get("iban").prefixes if props.get("bban")}
_SSN = re.compile(rf"(?<!\d)\d{{3}}-\d{{2}}-\d{{4}}(?!\d)"  # 212-45-6781
                  rf"|(?<![\d+])(?<!\d{_RUN_SEP})\d{{3}}{_SPACE}\d{{2}}{_SPACE}\d{{4}}(?!\d)(?!{_RUN_SEP}\d)")  # 212 45 6781
# The local part: RFC 5322's atext (letters, digits and !#$%&'*+/=?^_`{|}~-) and dots, at most 64 characters
# (RFC 5321), so a match is bounded.
_EMAIL = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~\-]{1,64}@"
    r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.){1,8}"  # up to 8 domain labels, each ended by its dot
    r"[^\W\d_]{2,63}(?![\w\-])")  # the top-level domain: letters
_MASK_NUMBER = re.compile(rf"\d(?:{_SEP}?\d){{6,}}")
_MASK_EMAIL = re.compile(r"(?<!\S)[^\s@]*+@\S*")  # a word with an "@", matched from its start only: linear

MIN_CARD_DIGITS, MAX_CARD_DIGITS = 13, 19
MAX_ROUNDS = 3
# Texts longer than one chat message (``schemas.events.MAX_CHAT_CHARS``) are read in windows of
# CHUNK_CHARS that overlap by CHUNK_OVERLAP, more than the longest identifier the recognizers take (an
# e-mail address of at most 64 + 1 + 8 x 63 + 63 characters, a card or an IBAN with separators of at
# most 17 characters between its characters), so every identifier lies whole in some window.
CHUNK_CHARS, CHUNK_OVERLAP = 4_000, 1_000


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
    four, in any case, with spaces, dashes, dots or a line break between the groups (the country code
    and the check digits too): the run of groups from each start that is as long as the country's
    IBANs and that stdnum accepts."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = _IBAN_START.search(text, pos)
        if start is None:
            return spans
        length = IBAN_LENGTHS.get(start.group(1).upper())
        found = None
        if length is not None:
            compact, at = start.group(1) + start.group(2), start.end()
            while len(compact) < length:
                group = _IBAN_GROUP.match(text, at)
                if group is None:
                    break
                compact += group.group(1)
                at = group.end()
            if len(compact) == length and stdnum_iban.is_valid(compact):
                found = at
        if found is not None:
            spans.append((start.start(), found))
            pos = found
        else:
            pos = start.start() + 1


def _in_a_code(text: str, at: int) -> bool:
    """Whether the digits starting at ``at`` continue a code rather than follow a word: glued to two letters
    that start a word and are an IBAN country code (as in the IBAN-shaped "BE64295277816194"), or to letters glued to
    digits in turn (the tail of an IBAN's account number, "GB83WEST12345698765432", or of a reference)."""
    start = at
    while start > 0 and text[start - 1].isalpha():
        start -= 1
    if start == at:
        return False
    if start > 0 and text[start - 1].isalnum():
        return True
    return at - start == 2 and text[start:at].upper() in IBAN_LENGTHS


def card_spans(text: str) -> list[tuple[int, int]]:
    """Card numbers: a group of 13-19 digits, or consecutive groups of 3 or more digits adding up to 13-19
    (separators: ``_CARD_SEP``), first digit 2-6, Luhn-valid (the longest such window from the leftmost
    start). A card may touch a word ("card4111111111111111") but not a code (``_in_a_code``) nor a "+"
    (an international phone number)."""
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end(), _ascii_digits(g.group())) for g in _DIGIT_GROUP.finditer(text, *run.span())]
        i = 0
        while i < len(groups):
            first = groups[i][2]
            windows = []
            if len(first) < 3 or text[groups[i][0] - 1:groups[i][0]] == "+" or _in_a_code(text, groups[i][0]):
                i += 1
                continue
            if MIN_CARD_DIGITS <= len(first) <= MAX_CARD_DIGITS:  # written whole
                windows.append((i, first))
            digits = first  # or in groups (a format character removed may have joined two of them)
            for j in range(i + 1, len(groups)):
                digits += groups[j][2]
                if len(groups[j][2]) < 3 or len(digits) > MAX_CARD_DIGITS:
                    break
                if len(digits) >= MIN_CARD_DIGITS:
                    windows.append((j, digits))
            found = next((j for j, digits in reversed(windows) if digits[0] in "23456" and luhn.is_valid(digits)),
                         None)
            if found is None:
                i += 1
                continue
            spans.append((groups[i][0], groups[found][1]))
            i = found + 1
    return spans


def ssn_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _SSN.finditer(text)
            if stdnum_ssn.is_valid(_ascii_digits(m.group()))]


_OPENING, _CLOSING = "([（［", ")]）］"
_LONE_PLUS = re.compile(r"[+＋](?=\s)")


def _without_open_bracket(text: str, start: int, end: int) -> tuple[int, int]:
    """A span without a leading bracket it does not close, nor the spaces after it ("(+44 20 7946 0958)"
    keeps its brackets around the placeholder, "[ +247 62889" its "[ ")."""
    kind = _OPENING.find(text[start])
    if kind >= 0 and text.count(_OPENING[kind], start, end) > text.count(_CLOSING[kind], start, end):
        start += 1
        while start < end and text[start].isspace():
            start += 1
    return start, end


def _after_a_code(text: str, start: int) -> bool:
    """Whether a number starting at ``start`` is the tail of a reference: after "#", or after a letter or digit
    and a dash or slash ("ORD-02400000", an Irish number's shape, is an order number)."""
    return text[start - 1:start] == "#" or (start >= 2 and text[start - 1] in "-/" and text[start - 2].isalnum())


def phone_spans(text: str) -> list[tuple[int, int]]:
    """Valid phone numbers (libphonenumber's VALID leniency) for each region, merged; none after a code."""
    spans: set[tuple[int, int]] = set()
    # A "+" before a space starts no number but makes libphonenumber drop the next one ("+ +247 62889"):
    # read as a space (the same length, so the spans hold for the text).
    readable = _LONE_PLUS.sub(" ", text)
    for region, worth_a_look in PHONE_REGIONS.items():
        if not worth_a_look.search(text):
            continue
        for match in phonenumbers.PhoneNumberMatcher(readable, region, leniency=phonenumbers.Leniency.VALID):
            spans.add(_without_open_bracket(text, match.start, match.end))
    for window in _NATIONAL_WINDOW.finditer(text):
        for region in NATIONAL_REGIONS:
            for match in phonenumbers.PhoneNumberMatcher(window.group(), region, leniency=phonenumbers.Leniency.VALID):
                spans.add(_without_open_bracket(text, window.start() + match.start, window.start() + match.end))
    spans = {(start, end) for start, end in spans if not _after_a_code(text, start)}
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
    (EMAIL, email_spans, 0), (IBAN, iban_spans, 2), (CARD, card_spans, MIN_CARD_DIGITS),
    (SSN, ssn_spans, 9), (PHONE, phone_spans, 7),
]


def mask(text: str) -> str:
    """The coarse, linear-time redaction: every run of 7 or more digits (separators between them allowed)
    becomes ``[NUMBER]`` and every word with an ``@`` becomes ``[EMAIL]``. For when ``redact`` cannot be
    used or trusted: a recognizer failed, or a text is too long to spend the full recognizers on."""
    return _MASK_NUMBER.sub(NUMBER, _MASK_EMAIL.sub(EMAIL, text))


class RedactionError(Exception):
    """A recognizer failed on a text (``redact`` masks it instead; ``redact_long`` leaves it to its caller)."""

    def __init__(self, placeholder: str, found: list[tuple[int, int, str]]):
        super().__init__(f"the {placeholder} recognizer failed")
        self.placeholder, self.found = placeholder, found


Found = list[tuple[int, int, str]]  # identifiers as (start, end, placeholder) in a text, sorted, not overlapping


def _view(text: str, found: Found) -> tuple[str, list[int], list[tuple[int, str | None, int]]]:
    """What the recognizers read: ``text`` with the identifiers found so far as their placeholders and its
    format characters removed; with its pieces (their starts in the view, and each one's start in ``text``,
    placeholder or None, end in ``text``) to bring the view's positions back to the text's."""
    parts: list[str] = []
    starts: list[int] = []
    pieces: list[tuple[int, str | None, int]] = []
    length = last = 0

    def literal(start: int, end: int) -> None:
        nonlocal length
        if end > start:
            starts.append(length)
            pieces.append((start, None, end))
            parts.append(text[start:end])
            length += end - start

    for start, end, placeholder in [*found, (len(text), len(text), "")]:
        at = last
        for invisible in _FORMAT.finditer(text, last, start):
            literal(at, invisible.start())
            at = invisible.end()
        literal(at, start)
        if placeholder:
            starts.append(length)
            pieces.append((start, placeholder, end))
            parts.append(placeholder)
            length += len(placeholder)
        last = end
    return "".join(parts), starts, pieces


def _in_text(starts: list[int], pieces: list[tuple[int, str | None, int]], start: int, end: int) -> tuple[int, int]:
    """A span of the view as a span of the text: a placeholder it touches is taken whole, and so are the
    format characters inside it."""
    i = bisect_right(starts, start) - 1
    first, placeholder, last = pieces[i]
    text_start = first if placeholder else first + start - starts[i]
    i = bisect_right(starts, end - 1) - 1
    first, placeholder, last = pieces[i]
    text_end = last if placeholder else first + end - starts[i]
    return text_start, text_end


def _merge(found: Found, new: Found) -> Found:
    """``new`` identifiers with the earlier ones they do not cover (a later span covers an earlier one whole
    or not at all: a placeholder is taken whole)."""
    kept, i = [], 0
    for start, end, placeholder in found:
        while i < len(new) and new[i][1] <= start:
            i += 1
        if i < len(new) and new[i][0] <= start and end <= new[i][1]:
            continue
        kept.append((start, end, placeholder))
    return sorted(kept + new)


def identifiers(text: str) -> Found:
    """The identifiers of ``text`` as (start, end, placeholder), sorted; ``RedactionError`` when a recognizer
    fails. The passes run in ``PASSES``' order on the view (``_view``), each seeing the placeholders of the
    ones before, round after round until one finds nothing new (at most ``MAX_ROUNDS``)."""
    found: Found = []
    for _ in range(MAX_ROUNDS):
        view, starts, pieces = _view(text, found)
        digits = len(_DIGITS.findall(view))
        changed = False
        for placeholder, spans, min_digits in PASSES:
            if digits < min_digits:
                continue
            try:
                new = spans(view)
            except Exception as exc:  # noqa: BLE001 - a recognizer bug must neither stop the message nor leak it
                raise RedactionError(placeholder, found) from exc
            if new:
                found = _merge(found, [(*_in_text(starts, pieces, start, end), placeholder) for start, end in new])
                view, starts, pieces = _view(text, found)
                changed = True
        if not changed:
            break
    return found


def _render(text: str, found: Found) -> str:
    out, last = [], 0
    for start, end, placeholder in found:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


def redact(text: str) -> str:
    """``text`` with card numbers, IBANs, e-mail addresses, SSNs and phone numbers replaced by placeholders."""
    if not isinstance(text, str):
        raise TypeError(f"redact() takes a str, not {type(text).__name__}")
    try:
        return _render(text, identifiers(text))
    except RedactionError as exc:
        log.warning("redaction: the %s recognizer failed (%s); masking every long number and address",
                    exc.placeholder, type(exc.__cause__).__name__)
        try:
            return mask(_render(text, exc.found))
        except Exception:  # noqa: BLE001
            return mask(text)
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError on a huge text: mask, never raise or leak
        log.warning("redaction failed (%s); masking every long number and address", type(exc).__name__)
        return mask(text)


def redact_long(text: str) -> str:
    """``redact`` for a text of any length, in full: read in windows of ``CHUNK_CHARS`` overlapping by
    ``CHUNK_OVERLAP`` (an identifier on a window's edge lies whole in the next one), the identifiers of all
    windows joined (overlapping ones merged; the longer one names the placeholder). Costs about one
    ``redact`` of a chat message per ``CHUNK_CHARS - CHUNK_OVERLAP`` characters: the caller bounds the text.
    Raises ``RedactionError`` when a recognizer fails (no coarse mask: the caller drops the text)."""
    if len(text) <= CHUNK_CHARS:
        return _render(text, identifiers(text))
    spans: Found = []
    start = 0
    while True:
        spans += [(start + s, start + e, p) for s, e, p in identifiers(text[start:start + CHUNK_CHARS])]
        if start + CHUNK_CHARS >= len(text):
            break
        start += CHUNK_CHARS - CHUNK_OVERLAP
    merged: Found = []
    for s, e, p in sorted(spans):
        if merged and s < merged[-1][1]:
            ms, me, mp = merged[-1]
            merged[-1] = (ms, max(me, e), mp if me - ms >= e - s else p)
        else:
            merged.append((s, e, p))
    return _render(text, merged)
