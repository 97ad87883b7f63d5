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
from transformers import AutoModel, AutoTokenizer

from infra.settings import Settings, get_settings
from models.encoder import base_encoder_path
from models.runtime import collate, pick_device, plan_batches, to_device

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


def sentence_embeddings(tokenizer, encoder, device: torch.device, texts: list[str], max_length: int = 128
                        ) -> torch.Tensor:
    """Unit-length mean-pooled embeddings of ``texts``, computed in length-sorted batches."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    out = torch.empty(len(texts), encoder.config.hidden_size)
    for batch_ids in plan_batches([len(x) for x in ids], 64, 8192):
        batch = to_device(collate([{"input_ids": ids[i]} for i in batch_ids]), device)
        with torch.inference_mode():
            states = encoder(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        out[batch_ids] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
    return out


class Retriever:
    def __init__(self, entries: list[Entry], tokenizer, encoder, device: torch.device, max_length: int = 128):
        self.entries = entries
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.device = device
        self.max_length = max_length
        self.by_intent = {e.intent: e for e in entries if e.intent}
        self.index = self.embed([f"{e.question} {e.answer}" for e in entries])

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Retriever":
        s = settings or get_settings()
        base = base_encoder_path(s.base_encoder)
        device = pick_device(s.device)
        encoder = AutoModel.from_pretrained(base, add_pooling_layer=False).to(device).eval()
        entries = load_entries(Path(s.knowledge_base) if s.knowledge_base else SHIPPED)
        return cls(entries, AutoTokenizer.from_pretrained(base), encoder, device)

    def embed(self, texts: list[str]) -> torch.Tensor:
        return sentence_embeddings(self.tokenizer, self.encoder, self.device, texts, self.max_length)

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
