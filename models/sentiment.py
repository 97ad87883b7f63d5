"""News sentiment: negative / neutral / positive with probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForSequenceClassification

from infra.settings import Settings, get_settings
from models.encoder import load_model
from models.runtime import BatchedModel, pick_device, pick_dtype

LABELS = ["negative", "neutral", "positive"]
# Names other checkpoints use for the same classes (e.g. FinBERT, twitter-roberta).
_ALIASES = {"neg": "negative", "bearish": "negative", "label_0": "negative",
            "neu": "neutral", "label_1": "neutral",
            "pos": "positive", "bullish": "positive", "label_2": "positive"}


@dataclass
class Sentiment:
    label: str
    score: float
    scores: dict[str, float]

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "scores": self.scores}


class SentimentClassifier(BatchedModel):
    task = "sentiment"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "SentimentClassifier":
        s = settings or get_settings()
        device = pick_device(s.device)
        loaded = load_model(s.sentiment_model, AutoModelForSequenceClassification, s.base_encoder,
                            device, pick_dtype(device))
        return cls(loaded, s.max_length, s.max_batch, s.token_budget)

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        enc = self.loaded.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [{"input_ids": ids} for ids in enc["input_ids"]]

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[Sentiment]:
        names = [_ALIASES.get(label.lower(), label.lower()) for label in self.labels]
        if sorted(names) != sorted(LABELS):
            raise ValueError(f"sentiment model labels {self.labels} do not map to {LABELS}")
        probs = torch.softmax(torch.stack(logits), dim=-1).tolist()
        results = []
        for row in probs:
            scores = {name: round(p, 6) for name, p in zip(names, row)}
            scores = {name: scores[name] for name in LABELS}
            label = max(scores, key=scores.get)
            results.append(Sentiment(label, scores[label], scores))
        return results
