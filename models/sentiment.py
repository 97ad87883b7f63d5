"""News sentiment: negative / neutral / positive with probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.classifier import TextClassifier

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


class SentimentClassifier(TextClassifier):
    task = "sentiment"
    setting = "sentiment_model"

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
