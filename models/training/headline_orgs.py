"""Real news headlines with their ORG spans labelled by hand (``models/written/news_headline_orgs.jsonl``), the
fixed rule that chose them, and span-level precision and recall.

The set is for evaluation (its ``test`` part) and for an optional training part (``train``); how it was made is in
``models/written/README.md``.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.training.datasets import SPLIT_SEED, WRITTEN, _need

HEADLINE_ORGS = WRITTEN / "news_headline_orgs.jsonl"
SOURCES = ("reuters_headlines.csv", "cnbc_headlines.csv")  # in ../shared/data/news_headlines
TEST_SIZE = 360  # the first TEST_SIZE headlines of the fixed order are the test part, the rest the training part
_TICKER = re.compile(r"^[0-9A-Z][0-9A-Z.&-]{0,14}$")


@dataclass(frozen=True)
class Headline:
    source: str  # file name in news_headlines
    row: int  # 0-based data row of the file (the header is not a row), as csv.DictReader reads it
    text: str  # the "Headlines" column exactly as in the file


def headline_order(data: Path) -> list[Headline]:
    """The fixed order the labelled set follows: each source's rows shuffled with ``random.Random(SPLIT_SEED)``,
    the two orders interleaved (Reuters first) until the shorter ends, empty headlines and repeats (the same words
    ignoring case and spacing) skipped."""
    shuffled = []
    for name in SOURCES:
        with _need(data / "news_headlines" / name).open(newline="", encoding="utf-8") as f:
            texts = [r["Headlines"] or "" for r in csv.DictReader(f)]
        rows = list(range(len(texts)))
        random.Random(SPLIT_SEED).shuffle(rows)
        shuffled.append([Headline(name, i, texts[i]) for i in rows if texts[i].strip()])
    seen, order = set(), []
    for pair in zip(*shuffled):
        for headline in pair:
            key = " ".join(headline.text.split()).casefold()
            if key not in seen:
                seen.add(key)
                order.append(headline)
    return order


def load_headline_orgs(path: Path = HEADLINE_ORGS, split: str | None = None) -> list[dict]:
    """The labelled headlines (all, or those of ``split``: "test" or "train")."""
    rows = [json.loads(line) for line in _need(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split is None or r["split"] == split]


def problems(rows: Sequence[dict]) -> list[str]:
    """What is wrong with the labelled rows, one line each (empty when they are sound): ids in order, the split
    rule, spans that are not ``text[start:end]``, cut words or overlap, and company entries."""
    found = []
    for n, r in enumerate(rows):
        where = f"{r.get('id')}"
        if r.get("id") != f"hl-{n + 1:04d}":
            found.append(f"{where}: id should be hl-{n + 1:04d}")
        if r.get("split") != ("test" if n < TEST_SIZE else "train"):
            found.append(f"{where}: split should be {'test' if n < TEST_SIZE else 'train'}")
        text, end_before = r["text"], -1
        for o in r["orgs"]:
            start, end = o["start"], o["end"]
            if not 0 <= start < end <= len(text) or text[start:end] != o["text"]:
                found.append(f"{where}: {o['text']!r} is not text[{start}:{end}]")
                continue
            if (start and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
                found.append(f"{where}: {o['text']!r} cuts a word")
            if start < end_before:
                found.append(f"{where}: {o['text']!r} overlaps or precedes the span before it")
            end_before = end
            company = o["company"]
            if company is not None and (set(company) != {"name", "ticker"} or not company["name"]
                                        or not (company["ticker"] is None or _TICKER.match(company["ticker"]))):
                found.append(f"{where}: {o['text']!r} has a malformed company {company!r}")
    return found


# --- span metrics ----------------------------------------------------------------------------------------------

Span = tuple[int, int]


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def span_scores(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """Precision, recall and F1 of predicted spans against gold spans, per text summed over texts.

    ``strict``: a span counts when the other side has the same (start, end). ``overlap``: a predicted span is right
    when it overlaps some gold span, a gold span is found when some predicted span overlaps it (so one long
    prediction over two names finds both)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold rows but {len(predicted)} predicted rows")
    gold, predicted = [set(g) for g in gold], [set(p) for p in predicted]  # a span said twice counts once
    n_gold = sum(len(g) for g in gold)
    n_pred = sum(len(p) for p in predicted)
    exact = sum(len(g & p) for g, p in zip(gold, predicted))
    right = sum(any(_overlaps(s, t) for t in g) for g, p in zip(gold, predicted) for s in p)
    found = sum(any(_overlaps(s, t) for t in p) for g, p in zip(gold, predicted) for s in g)
    return {"gold": n_gold, "predicted": n_pred,
            "strict": _prf(exact, n_pred, exact, n_gold), "overlap": _prf(right, n_pred, found, n_gold)}


def _prf(right: int, predicted: int, found: int, gold: int) -> dict:
    precision = right / predicted if predicted else 1.0
    recall = found / gold if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
