"""A fixed evaluation set for the redaction of personal data (``schemas/redaction.py``) and its scorer.

``evaluate_redaction()`` scores a redactor (``schemas.redaction.redact`` unless another is given) on
two sets built here, without any data file:

- **planted identifiers**: customer messages written for this module (a bank's customers writing
  about cards, transfers, refunds, their contact details) with identifiers of every type the
  redactor handles planted in them: Luhn-valid card numbers of eight brands and lengths 13 to 19
  (written whole, in groups of four or in the brand's own grouping, with spaces, dashes, dots or
  slashes); IBANs of seventeen countries with valid check digits (compact and in groups of four, upper
  and lower case, with a space after the country code, with dots); e-mail addresses of varied shapes
  (RFC 5322's ``!#$%&'*/=?^`{|}~`` in the local part too); phone numbers of fourteen countries in international
  form (``+44 20 7946 0958``, ``+442079460958``, ``0044 ...``) and of seven countries in national
  form (``020 7946 0958``, ``(212) 555-0123``, ``06 12 34 56 78``, written with or without spaces); US social
  security numbers (``AAA-GG-SSSS`` and ``AAA GG SSSS``). Some messages hold
  two identifiers of different types.
- **near misses** that must stay as they are: amounts, dates, times, order, invoice and reference
  numbers, the last four digits of a card, Luhn-invalid 16-digit numbers, IBAN-shaped strings with
  wrong check digits, percentages, years, sort codes and account numbers, postcodes.

The sets are built deterministically from ``SEED`` (``random.Random(SEED)``; the same Python and
library versions give the same set). Every planted value is checked against its definition when
it is made: cards with ``stdnum.luhn``, IBANs and SSNs with python-stdnum, phone numbers with
libphonenumber's ``is_valid_number``; every near miss against the same checks (a Luhn-invalid number
is invalid, a bad IBAN fails its checksum). Numbers a rule cannot tell apart from an identifier (a
16-digit order number that happens to pass the Luhn check) are not near misses and are not planted
as such.

The report, per type and overall:

- **recall**: planted identifiers replaced by the right placeholder (``[CARD]`` for a card ...) with
  their raw digits (for e-mail addresses, their text) gone from the output;
- **precision**: placeholders that cover a planted identifier / all placeholders in the outputs
  (per type: placeholders of that type covering an identifier of that type / all of that type);
- **near misses redacted**: near-miss messages whose text changed at all (count, by kind, and up to
  five examples).

A message's output is aligned with its text by the words around each planted identifier; when that
text itself changed (the redactor took more than the identifier), the message is counted in
``context_changed`` and its identifiers are scored by what the output still holds.

Targets (issue 17's acceptance): recall >= 0.98 and no near miss redacted.

``sentinel eval-redaction`` prints the report (``--json`` for the dict).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

SEED = 17
TARGET_RECALL = 0.98
TYPES = ("CARD", "IBAN", "EMAIL", "PHONE", "SSN")
PLACEHOLDER = re.compile(r"\[(CARD|IBAN|EMAIL|PHONE|SSN|NUMBER)\]")


@dataclass(frozen=True)
class Planted:
    """One identifier as written in a message."""

    kind: str  # one of TYPES
    value: str
    shape: str  # how it was written, e.g. "visa-16 spaced"

    @property
    def placeholder(self) -> str:
        return f"[{self.kind}]"

    def raw(self) -> str:
        """What must be gone from the output: the digits (cards, phones, SSNs), the compact IBAN, the address."""
        if self.kind == "EMAIL":
            return self.value.lower()
        if self.kind == "IBAN":
            return re.sub(r"[^0-9A-Z]", "", self.value.upper())
        return re.sub(r"\D", "", self.value)


@dataclass(frozen=True)
class Message:
    """A customer message: literal text and planted identifiers, in order."""

    parts: tuple[str | Planted, ...]

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.value for p in self.parts)

    @property
    def expected(self) -> str:
        return "".join(p if isinstance(p, str) else p.placeholder for p in self.parts)

    @property
    def planted(self) -> list[Planted]:
        return [p for p in self.parts if isinstance(p, Planted)]


@dataclass(frozen=True)
class NearMiss:
    """A message holding a value that looks like an identifier but is not one: it must stay as it is."""

    kind: str
    value: str
    text: str


# -- identifiers ---------------------------------------------------------------------------------------

# (brand, issuer prefixes, length, grouping of the brand's own printed form)
CARD_BRANDS = [
    ("visa", ["4"], 16, (4, 4, 4, 4)),
    ("visa", ["4"], 13, (4, 3, 3, 3)),
    ("visa", ["4"], 19, (4, 4, 4, 4, 3)),
    ("mastercard", ["51", "52", "53", "54", "55", "2221", "2500", "2720"], 16, (4, 4, 4, 4)),
    ("amex", ["34", "37"], 15, (4, 6, 5)),
    ("discover", ["6011", "644", "65"], 16, (4, 4, 4, 4)),
    ("jcb", ["3528", "3540", "3589"], 16, (4, 4, 4, 4)),
    ("diners", ["300", "305", "36", "38"], 14, (4, 6, 4)),
    ("unionpay", ["62"], 17, (4, 4, 4, 5)),
    ("maestro", ["5018", "5020", "6759"], 18, (4, 4, 4, 6)),
]
CARD_FORMATS = ("plain", "spaced", "dashed", "brand-spaced", "dotted", "slashed")

# (country, BBAN structure as in the IBAN registry: n digits, a capital letters, c letters or digits)
IBAN_COUNTRIES = [
    ("GB", "4!a6!n8!n"), ("DE", "8!n10!n"), ("FR", "5!n5!n11!c2!n"), ("NL", "4!a10!n"), ("ES", "4!n4!n1!n1!n10!n"),
    ("IT", "1!a5!n5!n12!c"), ("BE", "3!n7!n2!n"), ("IE", "4!a6!n8!n"), ("CH", "5!n12!c"), ("AT", "5!n11!n"),
    ("PL", "8!n16!n"), ("PT", "4!n4!n11!n2!n"), ("SE", "3!n16!n1!n"), ("DK", "4!n9!n1!n"), ("NO", "4!n6!n1!n"),
    ("FI", "3!n11!n"), ("LU", "3!n13!c"),
]
IBAN_FORMATS = ("compact", "grouped", "grouped", "grouped-lower", "compact-lower", "spaced-country", "dotted")

PHONE_INTERNATIONAL = ["GB", "US", "FR", "DE", "IE", "ES", "NL", "IT", "AU", "IN", "CA", "BE", "CH", "PL"]
# National forms: the United Kingdom and the United States at length, five more countries with a trunk 0
PHONE_NATIONAL = {"GB": 12, "US": 12, "FR": 4, "IE": 4, "NL": 4, "CH": 4, "AU": 4}

FIRST = ["jane", "tom", "amira", "li", "oliver", "sofia", "raj", "zoe", "mateusz", "nora", "kwame", "ines"]
LAST = ["doe", "smith", "khan", "nguyen", "garcia", "kowalski", "obrien", "muller", "rossi", "okafor"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.co.uk", "post.example.de",
           "my-bank-example.io", "example.fr", "students.example.ac.uk", "example.email", "example.info"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _group(value: str, sizes, sep: str) -> str:
    out, at = [], 0
    for size in sizes:
        if at >= len(value):
            break
        out.append(value[at:at + size])
        at += size
    if at < len(value):
        out.append(value[at:])
    return sep.join(out)


def _fours(n: int) -> tuple[int, ...]:
    return (4,) * (n // 4) + ((n % 4,) if n % 4 else ())


def make_card(rng: random.Random, prefixes: list[str], length: int) -> str:
    body = rng.choice(prefixes)
    body += _digits(rng, length - 1 - len(body))
    number = body + luhn.calc_check_digit(body)
    assert luhn.is_valid(number) and len(number) == length
    return number


def write_card(number: str, fmt: str, grouping) -> str:
    if fmt == "plain":
        return number
    if fmt == "brand-spaced":
        return _group(number, grouping, " ")
    sizes = _fours(len(number))
    if sizes[-1] < 3:  # a last group of one or two digits is not how anyone writes a card: the brand's own
        sizes = grouping
    return _group(number, sizes, {"spaced": " ", "dashed": "-", "dotted": ".", "slashed": "/"}[fmt])


def make_iban(rng: random.Random, country: str, structure: str) -> str:
    pools = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}
    for _ in range(10_000):
        bban = "".join(rng.choice(pools[kind]) for count, kind in re.findall(r"(\d+)!([nac])", structure)
                       for _ in range(int(count)))
        number = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
        if stdnum_iban.is_valid(number):  # some countries also check national check digits (BE, ES, NO)
            return number
    raise RuntimeError(f"no valid {country} IBAN drawn")


def write_iban(number: str, fmt: str) -> str:
    if fmt == "spaced-country":  # "DE 89 3704 0044 0532 0130 00"
        return f"{number[:2]} {number[2:4]} {_group(number[4:], _fours(len(number) - 4), ' ')}"
    if fmt == "dotted":
        return _group(number, _fours(len(number)), ".")
    written = _group(number, _fours(len(number)), " ") if fmt.startswith("grouped") else number
    return written.lower() if fmt.endswith("lower") else written


EMAIL_SHAPES = [
    lambda r, f, l, d: f"{f}.{l}@{d}",
    lambda r, f, l, d: f"{f}{l}{r.randint(1, 99)}@{d}",
    lambda r, f, l, d: f"{f}_{l}@{d}",
    lambda r, f, l, d: f"{f}.{l}+bank@{d}",
    lambda r, f, l, d: f"{f[0]}.{l}@{d}",
    lambda r, f, l, d: f"{f.upper()}.{l.upper()}@{d.upper()}",
    lambda r, f, l, d: f"{f.capitalize()}.{l.capitalize()}@{d}",
    lambda r, f, l, d: f"{f}-{l}@{d}",
    lambda r, f, l, d: f"{r.randint(10000, 99999999)}@{d}",
    lambda r, f, l, d: f"{f}@{d}",
    lambda r, f, l, d: f"{l}.{f}.{r.randint(1970, 2005)}@{d}",
    lambda r, f, l, d: f"{f}.{l}@{r.choice(['eu', 'uk', 'support'])}.{d}",
    lambda r, f, l, d: f"{f}!{l}@{d}",  # the rest of RFC 5322's atext in the local part
    lambda r, f, l, d: f"{f}'{l}@{d}",
    lambda r, f, l, d: f"{r.choice('#$%&*=?^`{|}~')}{f}{r.choice('#$%&*/=?^`{|}~')}{l}@{d}",
]


def make_phone(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    national = str(example.national_number)
    for _ in range(10_000):
        keep = max(1, len(national) - 6)  # keep the area or mobile prefix, draw the rest
        candidate = phonenumbers.PhoneNumber(country_code=example.country_code,
                                             national_number=int(national[:keep] + _digits(rng, len(national) - keep)))
        if example.italian_leading_zero:
            candidate.italian_leading_zero = True
        if phonenumbers.is_valid_number(candidate) and phonenumbers.region_code_for_number(candidate) == region:
            return candidate
    raise RuntimeError(f"no valid {region} number drawn")


def write_phone(number: phonenumbers.PhoneNumber, fmt: str) -> str:
    F = phonenumbers.PhoneNumberFormat
    if fmt == "international":
        return phonenumbers.format_number(number, F.INTERNATIONAL)
    if fmt == "e164":
        return phonenumbers.format_number(number, F.E164)
    if fmt == "00":
        return "00" + phonenumbers.format_number(number, F.INTERNATIONAL)[1:]
    if fmt == "national":
        return phonenumbers.format_number(number, F.NATIONAL)
    if fmt == "national-compact":
        return re.sub(r"[\s()\-]", "", phonenumbers.format_number(number, F.NATIONAL))
    raise ValueError(fmt)


def make_ssn(rng: random.Random, sep: str = "-") -> str:
    while True:
        area = rng.randint(1, 899)
        number = f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"
        if stdnum_ssn.is_valid(number.replace(sep, "")):
            return number


# -- the customer messages -----------------------------------------------------------------------------

TEMPLATES = {
    "CARD": [
        "Hi, my card {} was charged twice for the same order, can you check?",
        "I lost my card yesterday. The number is {}",
        "please block card number {} immediately",
        "Why was my payment with {} declined at the shop?",
        "card: {}",
        "{} is the card I used for the top up",
        "My new card ({}) still hasn't arrived, it's been two weeks",
        "I think someone cloned my card {}, there are payments I don't recognise",
        "The ATM kept my card, number {}. What do I do now?",
        "Can you refund the fee on the card ending... actually here is the full number: {}.",
    ],
    "IBAN": [
        "Please send the refund to my account {} as soon as possible",
        "My IBAN is {}",
        "I made a transfer to {} but it hasn't arrived",
        "iban: {}, name on the account is the same as mine",
        "Can you confirm the account {} belongs to me?",
        "The beneficiary's IBAN {} was rejected, why?",
        "Transfer to {} please.",
        "I want my salary paid into {} from next month",
    ],
    "EMAIL": [
        "You can reach me at {} any time",
        "Please email the statement to {}",
        "My e-mail address changed, it is now {}.",
        "I never got the confirmation mail at {}",
        "contact: {}",
        "Send it to <{}> please",
        "Is {} the address you have on file for me?",
        "(my email is {})",
    ],
    "PHONE": [
        "Call me on {} after six please",
        "My phone number is {}.",
        "I changed my number to {}, please update it",
        "You can text {} with the code",
        "phone: {}",
        "The verification SMS never arrived on {}",
        "Please ring {} - I'm at work until five",
        "my mobile ({}) was stolen along with my wallet",
    ],
    "SSN": [
        "My social security number is {}",
        "SSN: {}",
        "For the tax form, my SSN is {}.",
        "Do you need my SSN ({}) to open the account?",
    ],
}
MIXED = [  # two identifiers of different types in one message
    ("CARD", "EMAIL", "My card {} was stolen, please write to {} with what to do"),
    ("IBAN", "PHONE", "Refund to {} please, and call me on {} if there's a problem"),
    ("CARD", "PHONE", "Card {} blocked? Ring me: {}"),
    ("EMAIL", "IBAN", "I'm {} and my account is {}"),
    ("SSN", "EMAIL", "SSN {}, email {}"),
    ("PHONE", "CARD", "From {}: my card {} is not working abroad"),
]


def _message(template: str, *planted: Planted) -> Message:
    parts: list[str | Planted] = []
    pieces = template.split("{}")
    assert len(pieces) == len(planted) + 1, template
    for piece, p in zip(pieces, [*planted, None]):
        if piece:
            parts.append(piece)
        if p is not None:
            parts.append(p)
    return Message(tuple(parts))


def planted_values(rng: random.Random) -> dict[str, list[Planted]]:
    values: dict[str, list[Planted]] = {t: [] for t in TYPES}
    for _ in range(3):
        for brand, prefixes, length, grouping in CARD_BRANDS:
            for fmt in CARD_FORMATS:
                number = make_card(rng, prefixes, length)
                values["CARD"].append(Planted("CARD", write_card(number, fmt, grouping), f"{brand}-{length} {fmt}"))
    for country, structure in IBAN_COUNTRIES:
        for fmt in IBAN_FORMATS:
            values["IBAN"].append(Planted("IBAN", write_iban(make_iban(rng, country, structure), fmt),
                                          f"{country} {fmt}"))
    for _ in range(5):
        for i, shape in enumerate(EMAIL_SHAPES):
            written = shape(rng, rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS))
            values["EMAIL"].append(Planted("EMAIL", written, f"shape-{i}"))
    for region in PHONE_INTERNATIONAL:
        for fmt in ("international", "international", "e164", "00"):
            values["PHONE"].append(Planted("PHONE", write_phone(make_phone(rng, region), fmt), f"{region} {fmt}"))
    for region, count in PHONE_NATIONAL.items():
        for fmt in ("national",) * (count - count // 3) + ("national-compact",) * (count // 3):
            values["PHONE"].append(Planted("PHONE", write_phone(make_phone(rng, region), fmt), f"{region} {fmt}"))
    for _ in range(24):
        values["SSN"].append(Planted("SSN", make_ssn(rng), "dashed"))
    for _ in range(12):
        values["SSN"].append(Planted("SSN", make_ssn(rng, " "), "spaced"))
    return values


def identifier_set(seed: int = SEED) -> list[Message]:
    """The customer messages with planted identifiers (the same list for the same seed)."""
    rng = random.Random(seed)
    values = planted_values(rng)
    messages = []
    for kind in TYPES:
        templates = TEMPLATES[kind]
        for i, planted in enumerate(values[kind]):
            messages.append(_message(templates[(i + rng.randrange(len(templates))) % len(templates)], planted))
    extra = planted_values(random.Random(seed + 1))  # fresh values for the mixed messages
    for n in range(4):
        for first, second, template in MIXED:
            messages.append(_message(template, extra[first][rng.randrange(len(extra[first]))],
                                     extra[second][rng.randrange(len(extra[second]))]))
    return messages


# -- near misses ---------------------------------------------------------------------------------------

def _amount(rng):
    whole = rng.choice([12, 45, 99, 250, 1234, 2500, 12000, 250000, 1500000])
    cents = rng.randint(0, 99)
    return rng.choice([
        f"£{whole:,}.{cents:02d}", f"{whole} EUR", f"${whole:,}", f"€{whole}.{cents:02d}",
        f"{whole:,}.{cents:02d} GBP", f"USD {whole:,}", f"{whole:,}.{cents:02d}".replace(",", "X").replace(
            ".", ",").replace("X", ".") + " €", f"{whole}.{cents:02d}",
    ])


def _date(rng):
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2015, 2026)
    month = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
             "October", "November", "December"][m - 1]
    return rng.choice([f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{d} {month} {y}",
                       f"{m}/{d}/{y % 100:02d}", f"{d:02d}-{m:02d}-{y}", f"{month} {d}, {y}"])


def _time(rng):
    h, m, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return rng.choice([f"{h:02d}:{m:02d}", f"{h % 12 or 12}:{m:02d}{rng.choice(['am', 'pm', ' pm'])}",
                       f"{h:02d}:{m:02d}:{s:02d}", f"{h:02d}:{m:02d} GMT", f"{h:02d}h{m:02d}"])


def _order(rng):
    n = rng.choice([6, 7, 8, 9, 12, 15])
    number = rng.choice("123456789") + _digits(rng, n - 1)
    if n == 15:  # like the order numbers of bitext's customer messages: "113542617735902"
        number = "1" + number[1:]
    return rng.choice([number, f"#{number}", f"ORD-{number}"])


def _reference(rng):
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(2))
    return rng.choice([f"{letters}{_digits(rng, 8)}", f"TX-{_digits(rng, 8)}", f"{_digits(rng, 2)}-{_digits(rng, 4)}",
                       f"{rng.randint(2019, 2026)}{_digits(rng, 4)}-{_digits(rng, 4)}", f"INV-{_digits(rng, 5)}",
                       f"#{_digits(rng, 5)}"])


def _last_four(rng):
    return _digits(rng, 4)


def _luhn_invalid(rng):
    while True:
        number = make_card(rng, ["4", "51", "55", "6011", "35"], 16)
        wrong = number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)
        if not luhn.is_valid(wrong):
            return rng.choice([wrong, _group(wrong, _fours(16), " "), _group(wrong, _fours(16), "-")])


def _bad_iban(rng):
    country, structure = rng.choice(IBAN_COUNTRIES)
    number = make_iban(rng, country, structure)
    check = (int(number[2:4]) + rng.randint(1, 96)) % 97
    wrong = f"{number[:2]}{check:02d}{number[4:]}"
    if stdnum_iban.is_valid(wrong):
        return _bad_iban(rng)
    return rng.choice([wrong, _group(wrong, _fours(len(wrong)), " ")])


def _percent(rng):
    return rng.choice([f"{rng.randint(1, 99)}%", f"{rng.randint(0, 9)}.{rng.randint(0, 99):02d}%",
                       f"{rng.randint(1, 30)} %", f"{rng.randint(1, 20)} percent"])


def _year(rng):
    return str(rng.randint(1990, 2026))


def _bank_details(rng):
    return rng.choice([f"{_digits(rng, 2)}-{_digits(rng, 2)}-{_digits(rng, 2)}", _digits(rng, 8)])


def _postcode(rng):
    return rng.choice(["SW1A 1AA", "EC1A 1BB", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "75008", "10115",
                       "D02 X285", "90210", "1012 AB"])


NEAR_MISS_KINDS = {  # kind: (value maker, messages it is written into, how many)
    "amount": (_amount, ["I was charged {} but the price was lower", "Refund of {} still not received",
                         "why is there a fee of {} on my statement?", "I sent {} to my landlord"], 30),
    "date": (_date, ["The payment on {} is not mine", "I ordered the card on {}", "since {} nothing has happened",
                     "statement dated {}"], 30),
    "time": (_time, ["it happened at {} today", "I called at {} and waited an hour",
                     "the transfer left at {}"], 20),
    "order number": (_order, ["order {} never arrived", "Where is my order {}?", "I want to cancel order {}",
                              "order number: {}"], 30),
    "reference": (_reference, ["ref {}", "my reference is {}", "the transaction {} is wrong",
                               "case {} is still open", "invoice {} was paid twice"], 25),
    "last four": (_last_four, ["my card ending {} was declined", "card ending in {} is lost",
                               "last four digits {}", "the one that ends with {}"], 25),
    "luhn-invalid number": (_luhn_invalid, ["is {} a valid card number?", "card {} was charged",
                                            "number {} from the letter"], 25),
    "bad iban": (_bad_iban, ["IBAN {} (I may have mistyped it)", "send it to {}", "account {} rejected"], 25),
    "percentage": (_percent, ["the interest went up by {}", "a {} fee is too much",
                              "cashback of {} was promised"], 15),
    "year": (_year, ["I have been a customer since {}", "my statements from {}", "in {} you charged me twice"], 15),
    "bank details": (_bank_details, ["sort code {}", "account number {} at another bank",
                                     "my old account {} is closed"], 12),
    "postcode": (_postcode, ["my new address is at {}", "postcode {}", "I moved to {} last month"], 10),
}


def near_miss_set(seed: int = SEED) -> list[NearMiss]:
    """The near-miss messages (the same list for the same seed)."""
    rng = random.Random(seed + 2)
    out = []
    for kind, (make, templates, count) in NEAR_MISS_KINDS.items():
        for i in range(count):
            value = make(rng)
            out.append(NearMiss(kind, value, templates[i % len(templates)].format(value)))
    return out


# -- the scorer ----------------------------------------------------------------------------------------

def _align(message: Message, output: str) -> list[str] | None:
    """What each planted identifier became in ``output``, or None when the text around them changed."""
    pattern = "".join(re.escape(p) if isinstance(p, str) else "(.*?)" for p in message.parts)
    match = re.fullmatch(pattern, output, re.DOTALL)
    return list(match.groups()) if match else None


def _gone(planted: Planted, output: str) -> bool:
    if planted.kind == "EMAIL":
        return planted.raw() not in output.lower()
    if planted.kind == "IBAN":
        return planted.raw() not in re.sub(r"[^0-9A-Z]", "", output.upper())
    return planted.raw() not in re.sub(r"\D", "", output)


def score(redactor: Callable[[str], str], messages: list[Message], near_misses: list[NearMiss]) -> dict:
    """Recall, precision and near misses of ``redactor`` on the given sets (see the module's doc)."""
    by_type = {t: {"planted": 0, "recalled": 0, "placeholders": 0, "covering": 0, "missed": []} for t in TYPES}
    covering_total = placeholders_total = 0
    context_changed = 0
    for message in messages:
        output = redactor(message.text)
        found = PLACEHOLDER.findall(output)
        placeholders_total += len(found)
        for kind in found:
            if kind in by_type:
                by_type[kind]["placeholders"] += 1
        became = _align(message, output)
        if became is None:
            context_changed += 1
        for i, planted in enumerate(message.planted):
            row = by_type[planted.kind]
            row["planted"] += 1
            if became is not None:
                ok = became[i] == planted.placeholder and _gone(planted, output)
                covered = bool(PLACEHOLDER.search(became[i]))
                covered_right = planted.placeholder in became[i]
            else:  # scored by what the output still holds
                ok = covered_right = _gone(planted, output) and planted.placeholder in output
                covered = _gone(planted, output) and bool(found)
            row["recalled"] += ok
            covering_total += covered
            row["covering"] += covered_right
            if not ok:
                row["missed"].append({"shape": planted.shape, "value": planted.value, "output": output})
    redacted = []
    near_by_kind: dict[str, dict] = {}
    for near in near_misses:
        output = redactor(near.text)
        row = near_by_kind.setdefault(near.kind, {"total": 0, "redacted": 0})
        row["total"] += 1
        if output != near.text:
            row["redacted"] += 1
            redacted.append({"kind": near.kind, "text": near.text, "output": output})
            placeholders_total += len(PLACEHOLDER.findall(output))
            for kind in PLACEHOLDER.findall(output):
                if kind in by_type:
                    by_type[kind]["placeholders"] += 1
    planted_total = sum(r["planted"] for r in by_type.values())
    recalled_total = sum(r["recalled"] for r in by_type.values())
    report = {
        "task": "redaction",
        "seed": SEED,
        "messages": len(messages),
        "planted": planted_total,
        "recall": round(recalled_total / planted_total, 4) if planted_total else None,
        "precision": round(covering_total / placeholders_total, 4) if placeholders_total else None,
        "by_type": {t: {"planted": r["planted"], "recall": round(r["recalled"] / r["planted"], 4) if r["planted"] else None,
                        "precision": round(r["covering"] / r["placeholders"], 4) if r["placeholders"] else None,
                        "placeholders": r["placeholders"], "missed": len(r["missed"]), "missed_examples": r["missed"][:5]}
                    for t, r in by_type.items()},
        "context_changed": context_changed,
        "near_misses": len(near_misses),
        "near_misses_redacted": len(redacted),
        "near_misses_by_kind": near_by_kind,
        "near_miss_examples": redacted[:5],
        "targets": {"recall": TARGET_RECALL, "near_misses_redacted": 0},
    }
    report["meets_targets"] = bool(report["recall"] is not None and report["recall"] >= TARGET_RECALL
                                   and not redacted)
    return report


def evaluate_redaction(redactor: Callable[[str], str] | None = None, seed: int = SEED) -> dict:
    """The report of ``redactor`` (default: ``schemas.redaction.redact``) on the fixed sets built from ``seed``."""
    if redactor is None:
        from schemas.redaction import redact as redactor
    return score(redactor, identifier_set(seed), near_miss_set(seed))


def format_report(report: dict) -> str:
    lines = [f"redaction on {report['messages']} messages with {report['planted']} planted identifiers and "
             f"{report['near_misses']} near misses (seed {report['seed']})",
             f"{'type':<8}{'planted':>9}{'recall':>9}{'precision':>11}{'missed':>8}"]
    for kind, row in report["by_type"].items():
        precision = "-" if row["precision"] is None else f"{row['precision']:.4f}"
        lines.append(f"{kind:<8}{row['planted']:>9}{row['recall']:>9.4f}{precision:>11}{row['missed']:>8}")
    precision = "-" if report["precision"] is None else f"{report['precision']:.4f}"
    lines.append(f"{'all':<8}{report['planted']:>9}{report['recall']:>9.4f}{precision:>11}")
    lines.append(f"near misses redacted: {report['near_misses_redacted']} of {report['near_misses']}")
    for example in report["near_miss_examples"]:
        lines.append(f"  {example['kind']}: {example['text']!r} -> {example['output']!r}")
    for kind, row in report["by_type"].items():
        for example in row["missed_examples"]:
            lines.append(f"  missed {kind} ({example['shape']}): {example['value']!r} -> {example['output']!r}")
    if report["context_changed"]:
        lines.append(f"messages whose other text changed: {report['context_changed']}")
    lines.append(f"targets (recall >= {report['targets']['recall']}, no near miss redacted): "
                 f"{'met' if report['meets_targets'] else 'NOT met'}")
    return "\n".join(lines)
