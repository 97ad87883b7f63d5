"""Chat intent: one of the 77 banking intents (or the labels of any model set in the settings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.classifier import TextClassifier


@dataclass
class Intent:
    label: str
    score: float
    alternatives: list[tuple[str, float]]

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score,
                "alternatives": [{"label": n, "score": s} for n, s in self.alternatives]}


class IntentClassifier(TextClassifier):
    task = "intent"
    setting = "intent_model"

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[Intent]:
        probs = torch.softmax(torch.stack(logits), dim=-1)
        top, idx = probs.topk(min(3, probs.size(-1)), dim=-1)
        results = []
        for scores, ids in zip(top.tolist(), idx.tolist()):
            ranked = [(self.labels[i], round(s, 6)) for s, i in zip(scores, ids)]
            results.append(Intent(ranked[0][0], ranked[0][1], ranked[1:]))
        return results
