"""Readers and fixed splits for the data sets in ``shared/data`` (read by path, never copied).

Split rules (documented in docs/MODELS.md):
- Financial PhraseBank: ``Sentences_50Agree.txt``, split on the last ``@``; exact duplicates
  collapsed, sentences seen with two different labels dropped; then a stratified
  80/10/10 train/val/test split with ``SPLIT_SEED``.
- twitter-financial-news: ``sent_train.csv`` for training, ``sent_valid.csv`` for evaluation only.
- SEntFiN: the headlines with exactly one entity, labelled with that entity's sentiment.
- CoNLL-2003: the standard train / valid / test files (IOB2).
- banking77: ``train.csv`` (10% stratified hold-out with ``SPLIT_SEED`` for model selection), ``test.csv``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

SPLIT_SEED = 20240607
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
TWITTER_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}


class DataMissing(FileNotFoundError):
    pass


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataMissing(f"{path} not found: pass --data pointing at the shared data folder (e.g. ../shared/data)")
    return path


@dataclass
class TextSplit:
    texts: list[str]
    labels: list[str]


def _read_fpb(path: Path) -> dict[str, str]:
    seen: dict[str, set[str]] = {}
    for line in _need(path).read_text(encoding="utf-8").splitlines():
        if "@" not in line:
            continue
        text, _, label = line.rpartition("@")
        text, label = text.strip(), label.strip()
        if text and label in SENTIMENT_LABELS:
            seen.setdefault(text, set()).add(label)
    return {t: next(iter(ls)) for t, ls in seen.items() if len(ls) == 1}


def fpb_splits(data: Path) -> dict[str, TextSplit]:
    """Fixed train/val/test of FPB 50Agree, plus ``test_allagree`` (test sentences also in AllAgree)."""
    folder = data / "financial_phrasebank"
    rows = _read_fpb(folder / "Sentences_50Agree.txt")
    texts = sorted(rows)
    labels = [rows[t] for t in texts]
    tr_x, rest_x, tr_y, rest_y = train_test_split(texts, labels, test_size=0.2, stratify=labels,
                                                  random_state=SPLIT_SEED)
    va_x, te_x, va_y, te_y = train_test_split(rest_x, rest_y, test_size=0.5, stratify=rest_y,
                                              random_state=SPLIT_SEED)
    all_agree = _read_fpb(folder / "Sentences_AllAgree.txt")
    aa = [(t, y) for t, y in zip(te_x, te_y) if t in all_agree]
    return {
        "train": TextSplit(tr_x, tr_y),
        "val": TextSplit(va_x, va_y),
        "test": TextSplit(te_x, te_y),
        "test_allagree": TextSplit([t for t, _ in aa], [y for _, y in aa]),
    }


def twitter_split(data: Path, part: str) -> TextSplit:
    path = _need(data / "twitter_financial_news_sentiment" / f"sent_{part}.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return TextSplit([r["text"] for r in rows], [TWITTER_LABELS[r["label"]] for r in rows])


def sentfin_single_entity(data: Path) -> TextSplit:
    path = _need(data / "sentfin_v1" / "SEntFiN-v1.0.csv")
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            decisions = json.loads(r["Decisions"])
            if len(decisions) == 1:
                texts.append(r["Title"])
                labels.append(next(iter(decisions.values())))
    return TextSplit(texts, labels)


@dataclass
class TaggedSplit:
    words: list[list[str]]
    tags: list[list[str]]


def conll_split(data: Path, part: str) -> TaggedSplit:
    path = _need(data / "conll2003" / f"{part}.txt")
    words: list[list[str]] = []
    tags: list[list[str]] = []
    cw: list[str] = []
    ct: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if cw:
                words.append(cw)
                tags.append(ct)
            cw, ct = [], []
            continue
        cols = line.split()
        cw.append(cols[0])
        ct.append(cols[-1])
    return TaggedSplit(words, tags)


def banking77_splits(data: Path) -> dict[str, TextSplit]:
    folder = data / "banking77"

    def read(name: str) -> TextSplit:
        with _need(folder / name).open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return TextSplit([r["text"] for r in rows], [r["category"] for r in rows])

    train = read("train.csv")
    tr_x, va_x, tr_y, va_y = train_test_split(train.texts, train.labels, test_size=0.1,
                                              stratify=train.labels, random_state=SPLIT_SEED)
    return {"train": TextSplit(tr_x, tr_y), "val": TextSplit(va_x, va_y), "test": read("test.csv")}


def banking77_labels(data: Path) -> list[str]:
    return json.loads(_need(data / "banking77" / "categories.json").read_text())
