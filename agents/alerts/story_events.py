"""What event a headline tells, and whether two headlines tell different events.

An embedding puts "Kestrel Paper to cut 300 jobs" next to "Kestrel Paper to add 300 jobs": the
words differ in one place and the topic is the same. ``conflicts`` reads the parts of a headline
that make the event, and names the ones in which two headlines disagree:

- ``direction``: a word one headline has and the other lacks moves an axis (up/down, beat/miss,
  win/lose, approve/reject, buy/sell, open/close, profit/loss, appoint/resign, upgrade/downgrade)
  one way, and a word only the other has moves the same axis the other way. Words both share
  cancel out, so "oil rises as OPEC cuts output" and "oil falls as OPEC cuts output" still differ; and
  the first word that moves an axis moves it the other way in the other headline (the same moves in
  another order: "dollar falls, euro hovers at high" and "dollar rises, euro slips from high").
- ``negation``: one headline has a negation (not, no, fails to, denied, refuses ...) the other lacks.
- ``number``: each holds a number the other does not (values compared after scale: "$1.1 billion",
  "1.1bn" and "$1,100 million" are one value). A number dropped by one copy is no conflict.
- ``period``: each holds a period the other does not (quarters "Q1" = "first-quarter", halves,
  years, months).
- ``name``: each holds a name (a capitalised word inside a headline in sentence case) the other
  does not: another company, place or product. Headlines in title case or capitals carry no names.
- ``role``: the same parties on the other sides of the same kind of verb ("A sues B" and
  "B sues A"), unless one of them says it in the passive ("B acquired by A").

A check that cannot read a part (no number, no names) finds no conflict: the embedding decides.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

# Axis -> (words that move it up, words that move it down). Inflections are listed: no stemmer.
AXES: dict[str, tuple[str, str]] = {
    "level": (
        "rise rises rose risen rising up gain gains gained climb climbs climbed jump jumps jumped surge surges surged "
        "soar soars soared rally rallies rallied rebound rebounds rebounded higher high increase increases increased "
        "increasing increase boost boosts boosted lift lifts lifted raise raises raised raising hike hikes hiked grow "
        "grows grew growth expand expands expanded expansion widen widens widened wider double doubles doubled add "
        "adds added adding hire hires hired hiring inflow inflows extend extends extended create creates created "
        "creating faster accelerate accelerates accelerated tighten tightens tightened",
        "fall falls fell fallen falling down drop drops dropped decline declines declined slump slumps slumped "
        "plunge plunges plunged tumble tumbles tumbled sink sinks sank slide slides slid slip slips slipped lower "
        "lowers lowered low decrease decreases decreased cut cuts cutting reduce reduces reduced reduction trim trims "
        "trimmed slash slashes slashed shrink shrinks shrank narrow narrows narrowed narrower halve halves halved "
        "half ease eases eased fire fires fired firing layoff layoffs laid lay shed sheds axe axes axed outflow "
        "outflows decline weaker pull pulls pulled remove removes removed purge purges purged eliminate "
        "eliminates eliminated relax relaxes relaxed loosen loosens loosened slow slows slowed slowing slower"),
    "expectation": ("beat beats top tops topped exceed exceeds exceeded surpass surpasses surpassed ahead",
                    "miss misses missed short trail trails lags"),
    "contest": ("win wins won winning awarded", "lose loses lost losing"),
    "shares": ("buyback", "issue issues issued dilute dilutes diluted"),
    "approval": (
        "approve approves approved approval approvals clear clears cleared allow allows allowed permit permits "
        "permitted uphold upholds upheld unban unbans acquit acquits acquitted include includes included accept "
        "accepts accepted",
        "reject rejects rejected deny denies denied block blocks blocked ban bans banned bar bars barred veto "
        "vetoes vetoed overturn overturns overturned blame blames blamed accuse accuses accused prohibit prohibits "
        "exclude excludes excluded"),
    "trade": ("buy buys bought buying acquire acquires acquired acquisition purchase purchases purchased builds",
              "sell sells sold selling dump dumps dumped divest divests divested offload offloads"),
    "operation": (
        "open opens opened opening reopen reopens reopened launch launches launched start starts started resume "
        "resumes resumed restart restarts restarted restore restores restored enter enters entered expand expands "
        "expanded extend extends extended continue continues continued keep keeps kept file files filed filing",
        "close closes closed closing shut shuts shutting halt halts halted stop stops stopped suspend suspends "
        "suspended exit exits exited end ends ended scrap scraps scrapped drop drops dropped withdraw withdraws "
        "withdrew withdrawn pull pulls pulled delay delays delayed postpone postpones postponed defer defers "
        "deferred"),
    "result": ("profit profits profitable gain gains", "loss losses"),
    "post": ("appoint appoints appointed names named promote promotes promoted stay stays stayed",
             "resign resigns resigned quit quits leave leaves ousted"),
    "rating": ("upgrade upgrades upgraded", "downgrade downgrades downgraded"),
    "outlook": ("bullish optimistic strong stronger top", "bearish pessimistic weak bottom"),
}
# Phrases rewritten before the words are read (on the normalised, lower-case text).
PHRASES = [
    (re.compile(r"\blift(?:s|ed)? (?:(?:its|the|a) )?ban\b"), "unban"),
    (re.compile(r"\bun bans?\b"), "unban"),
    (re.compile(r"\bsteps? down\b|\bstepping down\b"), "resigns"),
    (re.compile(r"\blay(?:s|ing)? off\b|\blaid off\b"), "layoff"),
    (re.compile(r"\brul(?:e|es|ed|ing) out\b"), "not"),
    (re.compile(r"\b(?:scrap|scraps|scrapped|abandon|abandons|abandoned|drop|drops|dropped|shelve|shelves|shelved)"
                r" (?:(?:its|the|a) )?plans? to\b|\bcall(?:s|ed)? off\b"), "not"),
    (re.compile(r"\bvot(?:e|es|ed|ing) against\b"), "vote not"),
    (re.compile(r"\bf(?:all|alls|ell|alling) short\b"), "misses"),
    (re.compile(r"\b(?:ahead of|above) (?:forecasts?|estimates?|expectations?)\b"), "beats forecasts"),
    (re.compile(r"\b(?:below|short of) (?:forecasts?|estimates?|expectations?)\b"), "misses forecasts"),
    (re.compile(r"\bbuy(?:s|ing)? back\b|\bbuybacks?\b"), "buyback"),
    (re.compile(r"\bturn(?:s|ed|ing)? down\b"), "rejects"),
    (re.compile(r"\bchief executive(?: officer)?\b"), "ceo"),
    (re.compile(r"\b(?:don|doesn|didn|isn|wasn|won|can|couldn|wouldn|aren|hasn|haven|hadn|shouldn) t\b"), "not"),
]
NEGATIONS = frozenset("not no never without fail fails failed failing deny denies denied refuse refuses refused "
                      "collapse collapses collapsed nor cannot".split())
_WORD_AXES: dict[str, list[tuple[str, int]]] = {}
for _axis, (_up, _down) in AXES.items():
    for _sign, _words in ((1, _up), (-1, _down)):
        for _w in _words.split():
            if (_axis, _sign) not in _WORD_AXES.setdefault(_w, []):
                _WORD_AXES[_w].append((_axis, _sign))

_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mln": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9,
          "bln": 1e9, "billion": 1e9, "t": 1e12, "tn": 1e12, "trillion": 1e12, "crore": 1e7, "lakh": 1e5}
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10, "eleven": 11, "twelve": 12, "hundred": 100, "dozen": 12}
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s?"
    r"(?P<scale>thousand|million|billion|trillion|mln|bln|mn|bn|tn|crore|lakh|[kmbt](?![a-z]))?",
    re.IGNORECASE)
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_QUARTER = re.compile(r"\b(?:q(\d{1,2})|([1-4])q|(first|second|third|fourth|1st|2nd|3rd|4th)[\s-]+quarter)\b",
                      re.IGNORECASE)
_HALF = re.compile(r"\b(?:h([12])|(first|second|1st|2nd)[\s-]+half)\b", re.IGNORECASE)
_YEAR = re.compile(r"(?<![\d$€£.,])(?:fy|fiscal\s+)?((?:19|20)\d\d)(?![\w%])|\bfy(\d\d)\b", re.IGNORECASE)
_MONTHS = {m: i for i, names in enumerate([
    "january jan", "february feb", "march mar", "april apr", "may", "june jun", "july jul", "august aug",
    "september sept sep", "october oct", "november nov", "december dec"], 1) for m in names.split()}
_MONTH = re.compile(r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?", re.IGNORECASE)
_CAPITAL = re.compile(r"[A-Z][\w&'’.-]*")
_TOKEN = re.compile(r"[\w&'’.-]+")
# Words written in capitals that name no party: periods, titles, wire words and common acronyms.
_NOT_NAMES = frozenset(
    "ceo cfo coo cto chairman chief ipo spac gdp eps q1 q2 q3 q4 h1 h2 fy exclusive update brief factbox analysis "
    "i a the in on of for to and or as at by with from after amid over u.s us u.k uk eu un fda sec ecb fed "
    "imf oecd opec opec+ covid covid-19 ai ev evs etf etfs esg ftse nasdaq dow s&p breakingviews reuters "
    "bloomberg cnbc ap afp wsj ft sources source report reports says said".split()) | frozenset(_MONTHS) | frozenset(
    "monday tuesday wednesday thursday friday saturday sunday".split())
_ALIASES = {"britain": "uk", "u.k.": "uk", "u.s.": "us", "america": "us", "citigroup": "citi",
            "amazon.com": "amazon"}
_SMALL = frozenset("a an the of to in on for and or at by as vs via per from with".split())
ROLE_VERBS = {  # "A <verb> B": who does it to whom
    "sue": "sue sues sued suing lawsuit suit",
    "buy": "buy buys bought buying acquire acquires acquired acquiring acquisition takeover purchase purchases",
    "sell": "sell sells sold selling",
    "overtake": "overtake overtakes overtook overtaken",
    "beat": "beat beats defeat defeats defeated",
    "supply": "supply supplies supplied",
    "contract": "contract contracts",
    "fine": "fine fines fined",
    "accuse": "accuse accuses accused",
    "invest": "invest invests invested investment stake",
}
_ROLE_OF = {w: verb for verb, words in ROLE_VERBS.items() for w in words.split()}
_PASSIVE = frozenset("by".split())
_STOP = frozenset("a an the to of in on for and or its their his her as at with from over after amid into by "
                  "is are was were be been will would could should may might says said say agrees agree plans plan "
                  "set files file takes take court".split())
_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class EventFacts:
    words: tuple[str, ...]  # normalised words, phrases rewritten
    moves: Counter  # (axis, sign) -> how many words move it
    negations: int
    numbers: frozenset[float]
    periods: frozenset[str]
    names: frozenset[str] | None  # None: the casing tells no names (title case, capitals, unspaced scripts)
    name_order: tuple[str, ...]
    passive: bool
    roles: tuple[tuple[str, frozenset, frozenset], ...]  # (verb, words before it, words after it)
    leads: tuple[tuple[str, int], ...] = ()  # per axis, the direction of the first word that moves it


def _words(text: str) -> list[str]:
    s = " ".join(_WORD.sub(" ", text.casefold()).replace("_", " ").split())
    for pattern, replacement in PHRASES:
        s = pattern.sub(replacement, s)
    return s.split()


def _number_value(num: str, scale: str | None) -> float:
    value = float(num.replace(",", ""))
    return value * _SCALE.get((scale or "").lower(), 1.0)


def _numbers_and_periods(text: str) -> tuple[frozenset[float], frozenset[str]]:
    periods: set[str] = set()
    spans: list[tuple[int, int]] = []

    def take(match: re.Match, name: str) -> None:
        periods.add(name)
        spans.append(match.span())

    for m in _QUARTER.finditer(text):
        take(m, f"q{m.group(1) or m.group(2) or _ORDINAL[m.group(3).lower()]}")
    for m in _HALF.finditer(text):
        take(m, f"h{m.group(1) or _ORDINAL[m.group(2).lower()]}")
    for m in _YEAR.finditer(text):
        take(m, f"y{m.group(1) or '20' + m.group(2)}")
    for m in _MONTH.finditer(text):
        word = m.group(1).lower()
        if word == "may" and not re.search(r"\d|\b(?:in|of|since|until|by|through|from)\s+$", text[max(0, m.start() - 8):m.start()]) \
                and not re.match(r"\s*\d", text[m.end():]):
            continue  # "may" the verb
        if word in ("mar", "dec", "jan", "jun", "jul", "oct", "sep", "nov", "feb", "apr", "aug", "sept") \
                and m.group(0)[0].islower():
            continue
        take(m, f"m{_MONTHS[word]}")
    numbers: set[float] = set()
    for m in _NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in spans):
            continue
        numbers.add(round(_number_value(m.group("num"), m.group("scale")), 6))
    for w in _WORD.sub(" ", text.casefold()).split():
        if w in _NUMBER_WORDS:
            numbers.add(float(_NUMBER_WORDS[w]))
    # "one million" / "1 million": a scale word after a number word
    for m in re.finditer(r"\b(one|two|three|four|five|six|seven|eight|nine|ten)\s+(million|billion|thousand)\b",
                         text, re.IGNORECASE):
        value = {"one": 1, **_NUMBER_WORDS}[m.group(1).lower()] * _SCALE[m.group(2).lower()]
        numbers.discard(float(_NUMBER_WORDS.get(m.group(1).lower(), -1)))
        numbers.add(float(value))
    return frozenset(numbers), frozenset(periods)


def _names(text: str) -> tuple[frozenset[str] | None, tuple[str, ...]]:
    text = re.sub(r"\bUnited States\b", "US", text)
    tokens = _TOKEN.findall(text)
    if not any(t[0].islower() and t.isalpha() and t.casefold() not in _SMALL for t in tokens):
        return None, ()  # title case or capitals: capitals tell nothing
    order = []
    for k, t in enumerate(tokens):
        if not _CAPITAL.fullmatch(t):
            continue
        key = re.sub(r"(?:['’]s|['’])$", "", t).rstrip(".").casefold()
        key = _ALIASES.get(key, key)
        if not key or key in _NOT_NAMES or _QUARTER.fullmatch(key) or key.replace(".", "").isdigit():
            continue
        if k == 0 and key in _COMMON_FIRST:
            continue
        order.append(key)
    return frozenset(order), tuple(dict.fromkeys(order))


# Sentence-initial capitalised words that are ordinary words, not names.
_COMMON_FIRST = frozenset("judge court regulator regulators lenders investors analysts shareholders pension hedge "
                          "chipmaker electric jailed german british brazilian indian chinese japanese italian "
                          "exclusive blow boost bored amid as flight faced from with what weekly upbeat big "
                          "trading tech oil gold dollar euro stocks shares wall".split())


def _roles(words: list[str]) -> tuple[tuple[str, frozenset, frozenset], ...]:
    out = []
    for k, w in enumerate(words):
        verb = _ROLE_OF.get(w)
        if verb is None:
            continue
        before = frozenset(x for x in words[max(0, k - 5):k] if x not in _STOP and x not in _ROLE_OF)
        after = frozenset(x for x in words[k + 1:k + 6] if x not in _STOP and x not in _ROLE_OF)
        out.append((verb, before, after))
    return tuple(out)


_UNITS = {"bln": "billion", "bn": "billion", "mln": "million", "mn": "million", "pct": "percent"}
_PAIRED = {("u", "s"): "us", ("u", "k"): "uk"}  # "U.S." and "U.K." once punctuation is gone
_ADJECTIVES = {"british": "uk", "britain": "uk", "american": "us", "america": "us"}
# Nouns the wires use for one another ("UK watchdog" / "UK regulator", "probe" / "investigation").
_SYNONYMS = {"regulator": "watchdog", "regulators": "watchdogs", "investigation": "probe", "inquiry": "probe",
             "investigations": "probes", "inquiries": "probes"}
_ONE_SPELLING = {**_UNITS, **_ADJECTIVES, **_SYNONYMS}


def event_words(normalized: str) -> list[str]:
    """The words of a normalised headline with the words that say the same thing made one: a word that moves an
    axis becomes the axis and its direction ("cuts", "trims" and "axes" are one word; so are "shuts" and
    "closes"), phrases are rewritten first (``PHRASES``: "steps down" is "resigns"), and units, "U.S.", country
    adjectives and a few nouns the wires swap (``_SYNONYMS``) take one spelling; small words ("to", "of", "says")
    are left out. Stories compare these (``stories.shingles``): paraphrases share them,
    and opposite verbs stay apart."""
    words = _words(normalized)
    out: list[str] = []
    k = 0
    while k < len(words):
        w = words[k]
        if (w, words[k + 1] if k + 1 < len(words) else "") in _PAIRED:
            out.append(_PAIRED[(w, words[k + 1])])
            k += 2
            continue
        axes = _WORD_AXES.get(w)
        if axes:
            out.append("~" + "|".join(f"{axis}{sign:+d}" for axis, sign in sorted(axes)))
        elif w not in _STOP:
            out.append(_ONE_SPELLING.get(w, w))
        k += 1
    return out


@lru_cache(maxsize=65536)
def facts(headline: str) -> EventFacts:
    """The parts of ``headline`` that make its event: the headline as written (capitals and the punctuation of
    numbers matter), wire prefixes and outlet suffixes already removed (``stories.strip_wire``)."""
    text = unicodedata.normalize("NFKC", headline or "")
    words = _words(text)
    moves: Counter = Counter()
    leads: dict[str, int] = {}
    negations = 0
    for k, w in enumerate(words):
        negated = any(p in NEGATIONS for p in words[max(0, k - 2):k])
        if w in NEGATIONS:
            negations += 1
        for axis, sign in _WORD_AXES.get(w, ()):
            moves[(axis, -sign if negated else sign)] += 1
            leads.setdefault(axis, -sign if negated else sign)
    numbers, periods = _numbers_and_periods(text)
    names, order = _names(text)
    return EventFacts(tuple(words), moves, negations, numbers, periods, names, order,
                      any(w in _PASSIVE for w in words), _roles(words), tuple(sorted(leads.items())))


def _both_unmatched(a: frozenset, b: frozenset) -> bool:
    return bool(a - b) and bool(b - a)


def _name_match(x: str, others: frozenset[str]) -> bool:
    """A name matches another when one starts the other ("citi", "citigroup") or is its initials."""
    return any(x == y or (len(x) >= 4 and (y.startswith(x) or x.startswith(y) and len(y) >= 4)) for y in others)


def conflicts(a: str, b: str) -> list[str]:
    """The checks (``direction``, ``negation``, ``number``, ``period``, ``name``, ``role``) on which headlines
    ``a`` and ``b`` tell different events; empty when none does (module docstring)."""
    return between(facts(a), facts(b))


def between(fa: EventFacts, fb: EventFacts) -> list[str]:
    """``conflicts`` of two headlines' facts."""
    found = []
    only_a, only_b = fa.moves - fb.moves, fb.moves - fa.moves
    lead_b = dict(fb.leads)
    # opposite moves that only one side has; or the first move on an axis the other way ("dollar falls, euro
    # hovers at a high" and "dollar rises, euro slips from a high" have the same moves, in another order)
    if any((axis, -sign) in only_b for axis, sign in only_a) or any(
            lead_b.get(axis, sign) == -sign for axis, sign in fa.leads):
        found.append("direction")
    if (fa.negations > 0) != (fb.negations > 0):
        found.append("negation")
    if _both_unmatched(fa.numbers, fb.numbers):
        found.append("number")
    if _both_unmatched(fa.periods, fb.periods):
        found.append("period")
    if fa.names is not None and fb.names is not None:
        extra_a = {x for x in fa.names if not _name_match(x, fb.names)}
        extra_b = {x for x in fb.names if not _name_match(x, fa.names)}
        extra_a -= _initials(fb.name_order)
        extra_b -= _initials(fa.name_order)
        if extra_a and extra_b:
            found.append("name")
    if fa.passive == fb.passive and any(
            verb == verb_b and (before_a - before_b) & after_b and (after_a - after_b) & before_b
            for verb, before_a, after_a in fa.roles for verb_b, before_b, after_b in fb.roles):
        found.append("role")
    return found


def _initials(order: tuple[str, ...]) -> set[str]:
    """The acronyms of runs of consecutive names ("international energy agency": "iea")."""
    return {"".join(x[0] for x in order[i:j]) for i in range(len(order)) for j in range(i + 2, min(len(order), i + 5) + 1)}
