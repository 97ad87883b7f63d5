"""Named entities: PER, ORG, LOC, MISC from the model, TICKER by rule.

Text is split into words with character offsets first; the model labels the
first sub-token of each word (IOB2), and words are merged into spans, so every
span's ``text`` equals ``text[start:end]`` of the input.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForTokenClassification

from infra.settings import Settings, get_settings
from models.encoder import IGNORE, encode_texts, encode_words, split_words  # noqa: F401  (re-exported)
from models.runtime import BatchedModel

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")
_EXCHANGE = re.compile(
    r"\(\s*(?i:nasdaq(?:\s+(?:gs|gm|cm|helsinki|stockholm|copenhagen))?|nyse(?:\s+(?:american|arca|mkt))?"
    r"|amex|lse|lon|tsx|tsxv|asx|hkex|otc(?:qx|qb)?|omx|euronext|xetra|fwb|nse|bse|six|tyo|tse)"
    r"\s*:\s*([A-Z][A-Z0-9]{0,5}(?:[.-][A-Z0-9]{1,3})?)\s*\)"
)


@dataclass
class Entity:
    text: str
    label: str
    start: int
    end: int
    score: float
    sentiment: Any = None  # ORG and TICKER entities, from a trunk with an entity-sentiment head: a ``Sentiment``
    company: dict | None = None  # ORG and TICKER entities: the linked company {"id", "name", "ticker"}, or None

    def as_dict(self) -> dict:
        out = {"text": self.text, "label": self.label, "start": self.start, "end": self.end,
               "score": round(self.score, 6)}
        if self.sentiment is not None:
            out["sentiment"] = {"label": self.sentiment.label, "score": round(self.sentiment.score, 6)}
        if self.label in ("ORG", "TICKER"):
            out["company"] = self.company
        return out


def find_tickers(text: str) -> list[Entity]:
    """Cashtags ($AAPL) and exchange tickers ((NASDAQ: AAPL)); the span covers the symbol."""
    found = []
    for pattern in (_CASHTAG, _EXCHANGE):
        for m in pattern.finditer(text):
            found.append(Entity(m.group(1), "TICKER", m.start(1), m.end(1), 1.0))
    return sorted(found, key=lambda e: e.start)


def tags_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """IOB2 word tags to (label, first_word, last_word); a stray I- opens a new span."""
    spans: list[tuple[str, int, int]] = []
    current: list | None = None
    for i, tag in enumerate(tags):
        kind, _, label = tag.partition("-")
        if kind == "B" or (kind == "I" and (current is None or current[0] != label)):
            if current:
                spans.append(tuple(current))
            current = [label, i, i]
        elif kind == "I":
            current[2] = i
        else:
            if current:
                spans.append(tuple(current))
            current = None
    if current:
        spans.append(tuple(current))
    return spans


class EntityRecognizer(BatchedModel):
    task = "entities"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "EntityRecognizer":
        from models.trunk import load_task_model

        s = settings or get_settings()
        loaded = load_task_model(s, "entity_model", cls.task, AutoModelForTokenClassification)
        return cls(loaded, s.max_length, s.max_batch, s.token_budget)

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        return encode_texts(self.loaded.tokenizer, texts, self.max_length)

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[list[Entity]]:
        results = []
        # one gather and one softmax over every text's first sub-tokens: per-row tensor ops (indexing a
        # row with a list) cost more than the maths here
        starts = itertools.accumulate((len(row) for row in logits[:-1]), initial=0)
        index = [start + j for start, f in zip(starts, features) for j in f["_first"]]
        if index:
            words = torch.cat(logits).index_select(0, torch.tensor(index))
            best, idx = torch.softmax(words, dim=-1).max(dim=-1)
        else:
            best, idx = torch.empty(0), torch.empty(0, dtype=torch.long)
        best_rows = best.tolist()
        iob = [_iob(label) for label in self.labels]
        tag_rows = [iob[j] for j in idx.tolist()]
        offset = 0
        for text, feature in zip(texts, features):
            first = feature["_first"]
            entities: list[Entity] = []
            best, tags = best_rows[offset : offset + len(first)], tag_rows[offset : offset + len(first)]
            offset += len(first)
            if first:
                word_spans = [feature["_spans"][w] for w in feature["_words"]]
                for label, a, b in tags_to_spans(tags):
                    start, end = word_spans[a][0], word_spans[b][1]
                    score = sum(best[a : b + 1]) / (b + 1 - a)
                    entities.append(Entity(text[start:end], label, start, end, score))
            tickers = find_tickers(text)
            # the rules win: no model span may overlap a ticker or its "(EXCHANGE: SYMBOL)" group
            claimed = [(t.start, t.end) for t in tickers] + [m.span() for m in _EXCHANGE.finditer(text)]
            entities = [e for e in entities if not any(e.start < b and a < e.end for a, b in claimed)]
            results.append(sorted(entities + tickers, key=lambda e: e.start))
        return results


def _iob(label: str) -> str:
    """Normalise other checkpoints' tags (``B-PER``, ``PER``, ``b-per``) to IOB2."""
    label = label.upper()
    if label == "O" or label[:2] in ("B-", "I-"):
        return label
    return f"I-{label}"


def tag_words(recognizer: EntityRecognizer, word_lists: Sequence[Sequence[str]]) -> list[list[str]]:
    """IOB2 tags for pre-split words (evaluation on CoNLL); words cut by truncation get ``O``."""
    features = encode_words(recognizer.loaded.tokenizer, word_lists, recognizer.max_length)
    logits = recognizer.run(features)
    out = []
    for words, feature, row in zip(word_lists, features, logits):
        tags = ["O"] * len(words)
        if feature["_first"]:
            idx = row[feature["_first"]].argmax(dim=-1).tolist()
            for w, j in zip(feature["_words"], idx):
                tags[w] = _iob(recognizer.labels[j])
        out.append(tags)
    return out
