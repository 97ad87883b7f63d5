"""Chat intent: one of the 77 banking intents (or the labels of any model set in the settings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from infra.settings import Settings, get_settings
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

    temperature = 1.0  # logits are divided by it (models/calibration.py fits it)

    @classmethod
    def from_settings(cls, settings: Settings | None = None):
        """The served intent model, its scores temperature-scaled by the calibration fitted on it (if any)."""
        from models.calibration import calibration_for

        s = settings or get_settings()
        model = super().from_settings(s)
        calibration = calibration_for(s)
        if calibration is not None:
            model.temperature = calibration.temperature
        return model

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[Intent]:
        probs = torch.softmax(torch.stack(logits) / self.temperature, dim=-1)
        top, idx = probs.topk(min(3, probs.size(-1)), dim=-1)
        results = []
        for scores, ids in zip(top.tolist(), idx.tolist()):
            ranked = [(self.labels[i], round(s, 6)) for s, i in zip(scores, ids)]
            results.append(Intent(ranked[0][0], ranked[0][1], ranked[1:]))
        return results
