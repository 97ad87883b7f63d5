"""The knowledge base and its retrieval by embedding similarity.

The project ships its own answer for each of the 77 banking intents
(``models/knowledge/bank_answers.jsonl``); a user's knowledge base can replace it as
CSV or JSONL with ``question``, ``answer`` and optionally ``intent`` and ``id``.
Entries are embedded once at start-up with the base encoder (mean pooling, unit
length); retrieval is a cosine top-k.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from infra.settings import Settings, get_settings
from models.sentences import SentenceEncoder

SHIPPED = Path(__file__).resolve().parent / "knowledge" / "bank_answers.jsonl"


@dataclass(frozen=True)
class Entry:
    id: str
    question: str
    answer: str
    intent: str | None = None


def load_entries(path: Path = SHIPPED) -> list[Entry]:
    """Entries from JSONL or CSV; a clear ValueError names the first bad row."""
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path} line {n}: not JSON ({exc.msg})") from None
    entries = []
    for n, row in enumerate(rows, 1):
        question, answer = (row.get("question") or "").strip(), (row.get("answer") or "").strip()
        if not question or not answer:
            raise ValueError(f"{path} entry {n}: 'question' and 'answer' are required")
        entries.append(Entry(str(row.get("id") or f"kb-{n}"), question, answer, (row.get("intent") or None)))
    if not entries:
        raise ValueError(f"{path} holds no entries")
    return entries


class Retriever:
    def __init__(self, entries: list[Entry], sentences: SentenceEncoder):
        self.entries = entries
        self.sentences = sentences
        self.by_intent = {e.intent: e for e in entries if e.intent}
        self.index = self.embed([f"{e.question} {e.answer}" for e in entries])

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Retriever":
        s = settings or get_settings()
        entries = load_entries(Path(s.knowledge_base) if s.knowledge_base else SHIPPED)
        return cls(entries, SentenceEncoder.from_settings(s))

    def embed(self, texts: list[str]) -> torch.Tensor:
        return self.sentences.embed(texts)

    def search(self, texts: list[str], k: int = 3, embeddings: torch.Tensor | None = None
               ) -> list[list[tuple[Entry, float]]]:
        """The ``k`` nearest entries of each text (``embeddings``: the texts' unit embeddings, if computed)."""
        if not texts:
            return []
        scores = (self.embed(texts) if embeddings is None else embeddings) @ self.index.T
        top, idx = scores.topk(min(k, len(self.entries)), dim=-1)
        return [[(self.entries[i], round(float(s), 4)) for s, i in zip(row_s, row_i)]
                for row_s, row_i in zip(top.tolist(), idx.tolist())]

    def similarity(self, a: list[str], b: list[str]) -> list[float]:
        """Cosine similarity of each pair (a[i], b[i])."""
        return (self.embed(a) * self.embed(b)).sum(-1).tolist()
