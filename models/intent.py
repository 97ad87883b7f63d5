"""Chat intent: one of the 77 banking intents (or the labels of any model set in the settings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForSequenceClassification

from infra.settings import Settings, get_settings
from models.encoder import load_model
from models.runtime import BatchedModel, pick_device, pick_dtype


@dataclass
class Intent:
    label: str
    score: float
    alternatives: list[tuple[str, float]]

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score,
                "alternatives": [{"label": n, "score": s} for n, s in self.alternatives]}


class IntentClassifier(BatchedModel):
    task = "intent"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "IntentClassifier":
        s = settings or get_settings()
        device = pick_device(s.device)
        loaded = load_model(s.intent_model, AutoModelForSequenceClassification, s.base_encoder,
                            device, pick_dtype(device))
        return cls(loaded, s.max_length, s.max_batch, s.token_budget)

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        enc = self.loaded.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [{"input_ids": ids} for ids in enc["input_ids"]]

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[Intent]:
        probs = torch.softmax(torch.stack(logits), dim=-1)
        top, idx = probs.topk(min(3, probs.size(-1)), dim=-1)
        results = []
        for scores, ids in zip(top.tolist(), idx.tolist()):
            ranked = [(self.labels[i], round(s, 6)) for s, i in zip(scores, ids)]
            results.append(Intent(ranked[0][0], ranked[0][1], ranked[1:]))
        return results
