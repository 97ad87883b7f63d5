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
