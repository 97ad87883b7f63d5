"""Entity linking: each ORG and TICKER mention to a company of the universe, with a confidence, or to none.

Pure and offline: ``Universe`` indexes a list of ``Company`` rows; ``link_mentions(entities, text, universe)``
links an article's entities. A wrong link is worse than none, so every rule below prefers none when unsure.

1. **Normalise** (``name_key``): accents, case, possessives ("Nokia's"), punctuation, ``&`` as "and", a
   parenthesis ("Puma (brand)"), a leading "the" and trailing legal forms ("Inc.", "Oyj", "plc", "Group", "REIT").
   Tickers (``parse_ticker``): cashtags (``$AAPL``), exchange tags (``NASDAQ: HRWL``, ``LON:BA``, also just
   before the mention in the text) and Yahoo/Reuters suffixes (``SIE.DE``, ``AAPL.O``).
2. **Tickers**: the symbol's companies, on the tagged exchange when there is one. A Frankfurt listing counts
   only with its exchange tag (its symbols are arbitrary and collide). A symbol on several companies without a
   tag keeps a single US primary listing (cashtags are a US habit), else stays unlinked.
3. **Names, exactly**: the mention's key against every company's name and aliases.
   - *Namesakes*: when the key is also the first words of another company's name ("Prudential" of Prudential plc
     and Prudential Financial; "Apple" of Apple Hospitality REIT), the candidate must have **evidence** in the
     text: one of its tickers, its full name, or one of its context words (its industries and the context words
     of ``aliases.csv``). A curated alias (``aliases.csv``: "Apple" for Apple Inc.) is the news' usual meaning and
     needs evidence only when a namesake's own evidence is in the text.
   - *Common words* (``COMMON_WORDS``: Target, Next, Visa, Shell, ...): a one-word name that is also an
     everyday word links only when the mention is capitalised **and** the candidate has evidence in the text.
   - Several candidates: the one with evidence, when exactly one has.
4. **The leading words of one name**: a mention of two or more words that begins exactly one company's name
   ("Apple Hospitality") links to it; a one-word beginning needs evidence.
5. **Fuzzy** (``rapidfuzz`` ratio on keys of 8 or more characters) only at or above ``FUZZY_THRESHOLD``, measured
   on the labelled mentions of ``models/written/company_mentions.jsonl`` (``sentinel companies eval``), and only
   when the best company leads the next by ``FUZZY_MARGIN`` points.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from models.companies import EXCHANGES, RIC_SUFFIX, US_EXCHANGES, Company, exchange_code
from models.entity_keys import LEGAL_SUFFIXES, NOT_COMPANIES

FUZZY_THRESHOLD = 92.0  # measured: docs/COMPANIES.md (written mentions: 0 wrong from 90; real headlines: 1 wrong at 90)
FUZZY_MARGIN = 3.0
FUZZY_MIN_CHARS = 8  # a short word one edit from a name ("energy" and Entergy) is an everyday word, not a typo
# One-word names that are also everyday words: linked only with evidence (module docstring, rule 3).
COMMON_WORDS = frozenset({
    "target", "next", "visa", "shell", "ball", "progressive", "corning", "sage", "compass", "block", "square",
    "match", "southern", "dominion", "oracle", "amazon", "total", "puma", "orange", "gap", "delta", "united",
    "american", "general", "first", "equity", "public", "global", "snap", "zoom", "unity", "fox", "apollo",
    "mercury", "jaguar", "standard", "national", "pioneer", "discovery", "sunstone", "intuit", "kellogg",
    "dollar", "halliburton", "marathon", "ross", "regions", "chubb", "eaton", "emerson", "boston", "hess",
})
_TRAILING = LEGAL_SUFFIXES | {"and", "reit", "reits", "sab", "cv", "se", "nv", "oyj", "kgaa", "class", "a", "b"}
_GENERIC_CONTEXT = {
    "services", "service", "technology", "technologies", "information", "equipment", "products", "industrial",
    "industrials", "industries", "goods", "consumer", "cyclicals", "non", "general", "other", "and", "financial",
    "financials", "software", "internet", "computer", "companies", "company", "group", "holding", "holdings",
    "retailers", "materials", "energy", "real", "estate", "manufacturing", "trading", "business", "diversified",
    "specialty", "support", "media", "online", "systems", "management", "products", "development",
}
_SPACE = re.compile(r"\s+")
_PAREN = re.compile(r"\([^)]*\)")
_NON_WORD = re.compile(r"[^\w]+")
_EXCHANGE_NAMES = "|".join(sorted((re.escape(k) for k in EXCHANGES), key=len, reverse=True))
_EXCHANGE_TAG = re.compile(rf"(?i)\b({_EXCHANGE_NAMES})(?:\s+(?:GS|GM|CM|american|arca|mkt))?\s*:\s*$")
_TICKER_FORM = re.compile(
    rf"^\s*(?:\$|(?i:({_EXCHANGE_NAMES}))\s*:\s*)?([A-Za-z0-9]{{1,8}}(?:-[A-Za-z])?)(?:\.([A-Za-z]{{1,2}}))?\s*$")


def _fold(text: str) -> str:
    """Accents off, case folded, curly quotes straight."""
    text = unicodedata.normalize("NFKD", text.replace("’", "'").replace("‘", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def _words(text: str) -> list[str]:
    text = _fold(re.sub(r"(?<=\b\w)\.(?=\w\b)", "", text))  # S.A. -> SA., J.P. -> JP.
    text = re.sub(r"'s\b|(?<=s)'(?!\w)", "", text)  # possessives: Nokia's, Siemens'
    text = text.replace("&", " and ").replace("+", " plus ")
    return [w for w in _NON_WORD.split(text.replace("_", " ")) if w]


def name_key(text: str) -> str:
    """A name's comparable form: ``name_key("The Walt Disney Company's") == "walt disney"``."""
    words = _words(_PAREN.sub(" ", text))
    while len(words) > 1 and words[-1] in _TRAILING:
        words.pop()
    while len(words) > 1 and words[0] == "the":
        words.pop(0)
    return " ".join(words)


def full_key(text: str) -> str:
    """``name_key`` that keeps the legal form: "Prudential plc" and "Prudential Financial" stay apart."""
    words = _words(_PAREN.sub(" ", text))
    while len(words) > 1 and words[0] == "the":
        words.pop(0)
    return " ".join(words)


def parse_ticker(mention: str, before: str = "") -> tuple[str, str | None] | None:
    """(symbol, exchange code or None) of a ticker-shaped mention (``$AAPL``, ``NASDAQ: HRWL``, ``SIE.DE``,
    ``AAPL.O``); ``before`` is the text just before the mention, where an exchange tag may stand."""
    m = _TICKER_FORM.match(mention)
    if not m:
        return None
    exchange = exchange_code(m.group(1)) if m.group(1) else None
    symbol, suffix = m.group(2).upper(), (m.group(3) or "").upper()
    if suffix:
        if suffix not in RIC_SUFFIX:
            return None
        exchange = exchange or RIC_SUFFIX[suffix]
    if exchange is None and before:
        tag = _EXCHANGE_TAG.search(before[-40:])
        if tag:
            exchange = exchange_code(tag.group(1))
    return symbol, exchange


@dataclass(frozen=True)
class Link:
    company: Company
    confidence: float
    rule: str  # ticker, name, alias, evidence, leading-words, fuzzy


def _same_exchange(wanted: str, listed: str) -> bool:
    return wanted == listed or (wanted in US_EXCHANGES and listed in US_EXCHANGES and "US" in (wanted, listed))


def _user_first(candidates: list[Company]) -> list[Company]:
    """The user's own universe comes first: where it has a candidate, the default universe's do not count."""
    users = [c for c in candidates if c.source == "user"]
    return users or candidates


class Universe:
    """The companies, indexed for linking (built once; linking reads only)."""

    def __init__(self, companies: Iterable[Company]):
        by_id: dict[str, Company] = {}
        for c in companies:  # a user's row replaces a default row of the same id
            if c.id not in by_id or c.source == "user":
                by_id[c.id] = c
        self.companies = by_id
        self.official: dict[str, str] = {}
        self.by_name: dict[str, dict[str, bool]] = {}  # key -> {company id: curated alias?}
        self.by_full: dict[str, set[str]] = {}  # a name or alias with its legal form -> company ids
        self.leading: dict[str, set[str]] = {}  # proper leading words of a name -> company ids
        self.by_symbol: dict[str, list[tuple[str, str]]] = {}  # symbol -> (company id, exchange)
        self.context: dict[str, set[str]] = {}
        for c in by_id.values():
            key = name_key(c.name)
            if not key:
                continue
            self.official[c.id] = key
            self.by_name.setdefault(key, {}).setdefault(c.id, False)
            for alias in c.aliases:
                if name_key(alias):
                    self.by_name.setdefault(name_key(alias), {})[c.id] = True
            for form in (c.name, *c.aliases):
                if full_key(form) != name_key(form):
                    self.by_full.setdefault(full_key(form), set()).add(c.id)
            words = key.split()
            for n in range(1, len(words)):
                self.leading.setdefault(" ".join(words[:n]), set()).add(c.id)
            for t in c.tickers:
                self.by_symbol.setdefault(t.symbol.upper(), []).append((c.id, t.exchange))
            context = set()
            for phrase in c.industries:
                folded = " ".join(_words(phrase))
                if folded and folded not in _GENERIC_CONTEXT and len(folded) <= 30:
                    context.add(folded)
                context |= {w for w in folded.split() if len(w) >= 4 and w not in _GENERIC_CONTEXT}
            self.context[c.id] = context
        self._fuzzy_keys = [k for k in self.by_name if len(k) >= FUZZY_MIN_CHARS]

    def __len__(self) -> int:
        return len(self.companies)

    def name_pattern(self) -> re.Pattern:
        """Every company's ``surface_names`` as one whole-word, case-sensitive pattern, longest first."""
        if getattr(self, "_name_pattern", None) is None:
            names = sorted({n for c in self.companies.values() for n in surface_names(c)}, key=len, reverse=True)
            self._name_pattern = re.compile(r"(?<![\w&])(?:" + "|".join(map(re.escape, names)) + r")(?![\w&])"
                                            if names else r"(?!x)x")
        return self._name_pattern

    def get(self, company_id: str) -> Company | None:
        return self.companies.get(company_id)

    # -- evidence ------------------------------------------------------------------------------------------
    def evidence(self, company_id: str, text: str, folded: str, mention_key: str) -> bool:
        """A ticker of the company, its full name (longer than the mention) or a context word in the text."""
        c = self.companies[company_id]
        for t in c.tickers:
            if t.exchange == "FRA":
                continue
            sym = re.escape(t.symbol)
            for tag in re.finditer(rf"\b({_EXCHANGE_NAMES})\s*:\s*{sym}\b", text, re.I):
                if _same_exchange(exchange_code(tag.group(1)) or "", t.exchange):
                    return True
            # a bare symbol or cashtag speaks for the company only where no other company has that symbol
            unique = {cid for cid, ex in self.by_symbol.get(t.symbol, []) if ex != "FRA"} == {company_id}
            if unique and (re.search(rf"\${sym}\b", text) or (
                    len(t.symbol) >= 3 and re.search(rf"(?<![\w$]){sym}(?![\w.])", text))):
                return True
        full = self.official.get(company_id, "")
        if full != mention_key and " " + full + " " in folded:
            return True
        # the mention's own words are no evidence for it: "Bank" of "Bank stocks" is not Bank of America by its
        # context word "bank"
        rest = folded.replace(" " + mention_key + " ", " ", 1)
        return any(" " + w + " " in rest for w in self.context.get(company_id, ()))

    # -- linking -------------------------------------------------------------------------------------------
    def link_ticker(self, symbol: str, exchange: str | None) -> Link | None:
        listed = self.by_symbol.get(symbol, [])
        if exchange:
            ids = {cid for cid, ex in listed if _same_exchange(exchange, ex)}
        else:
            ids = {cid for cid, ex in listed if ex != "FRA"}
        candidates = _user_first([self.companies[i] for i in sorted(ids)])
        if len(candidates) == 1:
            return Link(candidates[0], 1.0 if exchange else 0.95, "ticker")
        if len(candidates) > 1 and not exchange:
            us = [c for c in candidates if c.tickers and c.tickers[0].exchange in US_EXCHANGES
                  and c.tickers[0].symbol == symbol]
            if len(us) == 1:
                return Link(us[0], 0.9, "ticker")
        return None

    def link_name(self, mention: str, text: str, folded: str, threshold: float = FUZZY_THRESHOLD) -> Link | None:
        key = name_key(mention)
        if not key or key in NOT_COMPANIES or not any(ch.isalpha() for ch in key):
            return None
        has = {}

        def evident(cid: str) -> bool:
            if cid not in has:
                has[cid] = self.evidence(cid, text, folded, key)
            return has[cid]

        registered = _user_first([self.companies[i] for i in self.by_full.get(full_key(mention), ())])
        if len(registered) == 1:  # the name with its legal form ("Prudential plc"): no namesake reads so
            return Link(registered[0], 1.0, "name")
        common = " " not in key and key in COMMON_WORDS
        if common and not mention.strip()[:1].isupper():
            return None
        exact = self.by_name.get(key, {})
        if exact:
            candidates = _user_first([self.companies[i] for i in exact])
            namesakes = [i for i in self.leading.get(key, ()) if i not in exact]
            if len(candidates) == 1:
                c = candidates[0]
                curated = exact[c.id] and not common
                if curated and not any(evident(i) for i in namesakes):
                    return Link(c, 0.95, "alias")
                if not namesakes and not common:
                    return Link(c, 1.0, "name")
                if evident(c.id) and not any(evident(i) for i in namesakes):
                    return Link(c, 0.9, "evidence")
                return None
            with_evidence = [c for c in candidates if evident(c.id)]
            others = [i for i in namesakes if evident(i)]
            return Link(with_evidence[0], 0.85, "evidence") if len(with_evidence) == 1 and not others else None
        if common:
            return None
        leading = _user_first([self.companies[i] for i in self.leading.get(key, ())])
        if len(leading) == 1 and (" " in key or evident(leading[0].id)):
            return Link(leading[0], 0.85, "leading-words")
        if len(leading) > 1:
            with_evidence = [c for c in leading if evident(c.id)]
            return Link(with_evidence[0], 0.8, "evidence") if len(with_evidence) == 1 else None
        return self.link_fuzzy(key, threshold)

    def link_fuzzy(self, key: str, threshold: float) -> Link | None:
        if len(key) < FUZZY_MIN_CHARS or threshold > 100:
            return None
        best: dict[str, float] = {}
        for found, score, _ in process.extract(key, self._fuzzy_keys, scorer=fuzz.ratio, limit=8,
                                               score_cutoff=min(threshold, 100) - FUZZY_MARGIN):
            for cid in self.by_name[found]:
                best[cid] = max(best.get(cid, 0.0), score)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        if not ranked or ranked[0][1] < threshold:
            return None
        if len(ranked) > 1 and ranked[1][1] > ranked[0][1] - FUZZY_MARGIN:
            return None
        return Link(self.companies[ranked[0][0]], round(ranked[0][1] / 100, 4), "fuzzy")

    def link(self, mention: str, label: str, text: str = "", start: int | None = None,
             threshold: float = FUZZY_THRESHOLD, folded: str | None = None) -> Link | None:
        """One mention (its surface text, NER label, the article and where in it the mention starts)."""
        if label not in ("ORG", "TICKER") or not mention or not mention.strip():
            return None
        before = text[max(0, start - 40):start] if start is not None and text else ""
        looks_like_ticker = label == "TICKER" or mention.strip().startswith("$") or re.search(
            r"^[A-Z0-9]{1,8}\.[A-Z]{1,2}$|:\s*[A-Z0-9]{1,8}$", mention.strip())
        if looks_like_ticker:
            parsed = parse_ticker(mention, before)
            if parsed is not None:
                return self.link_ticker(*parsed)
            if label == "TICKER":
                return None
        if folded is None:
            folded = " " + " ".join(_words(text or mention)) + " "
        return self.link_name(mention, text or mention, folded, threshold)


def surface_names(company: Company) -> set[str]:
    """How a headline writes the company, case kept: its name without a leading "The" and trailing legal forms
    ("The Walt Disney Company" -> "Walt Disney"), and its aliases; three characters or more. A name of three or
    more words also gives its first two when both are capitalised ("Thermo Fisher Scientific" -> "Thermo
    Fisher"): headlines shorten names, and ``Universe.link`` links such a beginning only when it begins one
    company's name alone (rule 4)."""
    out = set()
    for form in (company.name, *company.aliases):
        words = _PAREN.sub(" ", form).split()
        while len(words) > 1 and _NON_WORD.sub("", _fold(words[-1])) in _TRAILING:
            words.pop()
        if len(words) > 1 and words[0].casefold() == "the":
            words.pop(0)
        name = " ".join(words).strip(" ,")
        if len(name) >= 3 and (name[0].isupper() or name[0].isdigit()):
            out.add(name)
        if len(words) >= 3 and all(w[:1].isupper() for w in words[:2]):
            out.add(" ".join(words[:2]).strip(" ,"))
    return out


@lru_cache(maxsize=1)
def _index_pattern() -> re.Pattern:
    from models.companies import market_index_names

    # case-insensitive, whole words, any spacing ("S&P500", "Nasdaq  100")
    names = [r"\s*".join(map(re.escape, name.split())) for name in market_index_names()]
    return re.compile(r"(?i)(?<![\w&])(?:" + "|".join(names) + r")(?![\w&])")


def index_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` names a stock market index ("S&P 500", "Dow Jones", "FTSE 100")."""
    return [m.span() for m in _index_pattern().finditer(text or "")]


def mark_indices(entities: list, text: str) -> list:
    """An index is no company: the ORG and TICKER entities inside a market index's name ("S&P" of "S&P 500",
    which links S&P Global; "FTSE" of "FTSE 100") become one MISC entity over the name, in place, so an index's
    news neither links a company nor counts as a company's key; returns the new ones."""
    from models.entities import Entity

    marked = []
    for start, end in index_spans(text):
        inside = [e for e in entities if _field(e, "label") in ("ORG", "TICKER")
                  and start <= _field(e, "start") and _field(e, "end") <= end]
        if inside:
            marked.append(Entity(text[start:end], "MISC", start, end, max(_field(e, "score") or 0.0 for e in inside)))
            entities[:] = [e for e in entities if not any(e is x for x in inside)
                           and not (start < _field(e, "end") and _field(e, "start") < end)]
    if marked:
        entities[:] = sorted(entities + marked, key=lambda e: _field(e, "start"))
    return marked


def correct_mentions(entities: list, text: str, universe: Universe) -> list:
    """What the company master corrects in the entity model's output, in place (as served): the companies it knows
    that the model missed are added (``add_known_companies``), then index names are not companies
    (``mark_indices``: after, so a universe whose alias is an index's first word, "S&P" of S&P Global, adds no
    company inside "S&P 500"); returns the added companies that stay."""
    added = add_known_companies(entities, text, universe)
    mark_indices(entities, text)
    return [a for a in added if any(e is a for e in entities)]


def add_known_companies(entities: list, text: str, universe: Universe) -> list:
    """The entity model's misses of the companies the universe knows ("Wirecard", "Disney" read as nothing or
    as MISC, "Thermo Fisher" read as ORG "Thermo"): every place the text writes a company's name or alias,
    case-sensitively and as whole words, that no ORG or TICKER entity covers whole and that links
    (``Universe.link``: namesakes and everyday words still need their evidence) is added to ``entities`` as an
    ORG entity, in place, replacing the entities it overlaps; returns the added ones."""
    from models.entities import Entity

    if not len(universe) or not text:
        return []
    added = []
    for m in universe.name_pattern().finditer(text):
        start, end = m.span()
        if any(_field(e, "label") in ("ORG", "TICKER") and _field(e, "start") <= start and end <= _field(e, "end")
               for e in entities) or any(a.start < end and start < a.end for a in added):
            continue
        link = universe.link(m.group(), "ORG", text, start)
        if link is not None:
            added.append(Entity(m.group(), "ORG", start, end, link.confidence))
    if added:
        entities[:] = sorted([e for e in entities if not any(_field(e, "start") < a.end and a.start < _field(e, "end")
                                                             for a in added)] + added, key=lambda e: _field(e, "start"))
    return added


def _field(entity, name: str):
    return entity.get(name) if isinstance(entity, dict) else getattr(entity, name, None)


def link_mentions(entities: Sequence, text: str, universe: Universe,
                  threshold: float = FUZZY_THRESHOLD) -> list[Link | None]:
    """Each entity's link (objects or dicts with ``text``, ``label``, ``start``), in order; None where a mention
    is not an ORG or TICKER or does not link."""
    if not len(universe):
        return [None] * len(entities)
    folded = " " + " ".join(_words(text)) + " "
    return [universe.link(str(_field(e, "text") or ""), str(_field(e, "label") or ""), text, _field(e, "start"),
                          threshold, folded) for e in entities]


def attach_links(entities: Sequence, text: str, universe: Universe) -> list[Link | None]:
    """Link an article's entities and set each ORG and TICKER entity's ``company`` (``{"id", "name",
    "ticker"}`` or None); returns the links."""
    links = link_mentions(entities, text, universe)
    for e, link in zip(entities, links):
        if _field(e, "label") in ("ORG", "TICKER"):
            value = link.company.summary() if link else None
            if isinstance(e, dict):
                e["company"] = value
            else:
                e.company = value
    return links
