"""Stable keys for entity mentions, so "Nokia Oyj", "NOKIA" and "Nokia's" count as one company."""

from __future__ import annotations

import re
import unicodedata

LEGAL_SUFFIXES = {
    "inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "plc", "llc", "lp", "llp",
    "oyj", "oy", "ab", "abp", "asa", "as", "ag", "se", "sa", "nv", "bv", "gmbh", "spa", "srl", "kk", "pte",
    "holdings", "holding", "group", "the",
}
_PUNCT = re.compile(r"[^\w\s&]")
# Names the entity model sometimes tags as organisations in financial text that are not companies:
# currencies, units ("EUR 52 million") and exchanges ("NYSE:"), which must never become alert keys.
NOT_COMPANIES = {
    "eur", "euro", "euros", "usd", "dollar", "dollars", "gbp", "pound", "pounds", "sterling", "jpy", "yen", "chf",
    "sek", "nok", "dkk", "cny", "yuan", "inr", "rupee", "rupees", "rs", "cad", "aud", "hkd", "sgd", "rub", "brl",
    "mln", "mn", "bn", "billion", "million", "pct", "ceo", "cfo", "ipo", "q1", "q2", "q3", "q4",
    # exchanges are where a company trades, not the company
    "nyse", "nasdaq", "amex", "lse", "tsx", "asx", "hkex", "otc", "omx", "euronext", "xetra", "nse", "bse",
}


def entity_key(text: str, label: str) -> str:
    """``ticker:AAPL`` for tickers; otherwise the lower-cased name without punctuation,
    possessive or legal suffixes (``nokia`` for "Nokia Oyj's")."""
    if label == "TICKER":
        return "ticker:" + text.upper().lstrip("$")
    name = unicodedata.normalize("NFKC", text).lower()
    name = re.sub(r"['’]s\b", "", name)
    name = _PUNCT.sub(" ", name)
    words = name.split()
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    while len(words) > 1 and words[0] == "the":
        words.pop(0)
    return " ".join(words)[:256] or text[:256]


class KeyResolver:
    """The alert keys of an article: its tickers, and its companies joined to their tickers.

    A company name is joined to a ticker by the mapping file, or learned from an event
    that names exactly one company and carries exactly one ticker (the event's
    ``tickers`` field or a ticker in its text). One rule, the same in memory and in the
    ``entity_aliases`` table: the first join learned for a name stays (later events with
    another ticker change nothing), learned joins never override the file, and at most
    ``max_learned`` joins are kept in memory (beyond that, names stay unjoined).
    """

    def __init__(self, fixed: dict[str, str] | None = None, learned: dict[str, str] | None = None,
                 max_learned: int = 100_000):
        self.fixed = dict(fixed or {})
        self.max_learned = max_learned
        self.learned = {k: v for k, v in (learned or {}).items() if k not in self.fixed}
        self.learned = dict(list(self.learned.items())[:max_learned])

    @staticmethod
    def read_map(path) -> dict[str, str]:
        """``name,ticker`` rows (a header row is allowed) to {company key: ticker key}."""
        import csv

        out = {}
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 2 and row[0].strip() and row[0].strip().lower() != "name":
                    out[entity_key(row[0], "ORG")] = entity_key(row[1].strip(), "TICKER")
        return out

    def alias(self, org: str) -> str | None:
        return self.fixed.get(org) or self.learned.get(org)

    def keys_for(self, entities, event_tickers) -> tuple[set[str], list[tuple[str, str]]]:
        """(keys of the article, newly learned (alias, key) joins)."""
        tickers = {entity_key(t, "TICKER") for t in event_tickers}
        tickers |= {entity_key(e.text, "TICKER") for e in entities if e.label == "TICKER"}
        orgs = {entity_key(e.text, "ORG") for e in entities if e.label == "ORG"} - NOT_COMPANIES
        learned = []
        if len(tickers) == 1 and len(orgs) == 1:
            org, ticker = next(iter(orgs)), next(iter(tickers))
            if self.alias(org) is None and len(self.learned) < self.max_learned:
                self.learned[org] = ticker
                learned.append((org, ticker))
        return tickers | {self.alias(o) or o for o in orgs}, learned

    def settle(self, stored: dict[str, str]) -> None:
        """Take the database's joins for names this worker learned: another worker may have been first."""
        for org, ticker in stored.items():
            if org not in self.fixed and org in self.learned:
                self.learned[org] = ticker
