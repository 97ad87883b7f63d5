"""How the customer feels: calm, frustrated, angry or leaving, with probabilities.

Chat escalation used the financial sentiment model's ``negative`` probability, which
learnt news ("loss", "decline") and scores an angry customer near zero. This model is
trained for customer messages (``sentinel train customer-state``; the set is built in
``models/datasets.py``, ``customer_state_sets``, and described in docs/MODELS.md):

- ``calm``: requests, questions and plain complaints stated calmly;
- ``frustrated``: impatient, fed up, disappointed, asking again;
- ``angry``: hostile: insults, swearing at the bank, shouting, threats;
- ``leaving``: says they will or want to leave (close the account, move their money).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForSequenceClassification

from infra.settings import Settings, get_settings
from models.encoder import load_model
from models.runtime import BatchedModel, pick_device, pick_dtype

LABELS = ["calm", "frustrated", "angry", "leaving"]


@dataclass
class CustomerState:
    label: str
    score: float
    scores: dict[str, float]

    @property
    def upset(self) -> float:
        """The probability that the customer is frustrated or angry."""
        return self.scores.get("frustrated", 0.0) + self.scores.get("angry", 0.0)

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "scores": self.scores}


class CustomerStateClassifier(BatchedModel):
    task = "customer_state"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "CustomerStateClassifier":
        s = settings or get_settings()
        device = pick_device(s.device)
        loaded = load_model(s.customer_state_model, AutoModelForSequenceClassification, s.base_encoder,
                            device, pick_dtype(device))
        return cls(loaded, s.max_length, s.max_batch, s.token_budget)

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        enc = self.loaded.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [{"input_ids": ids} for ids in enc["input_ids"]]

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[CustomerState]:
        if sorted(self.labels) != sorted(LABELS):
            raise ValueError(f"customer state model labels {self.labels} are not {LABELS}")
        probs = torch.softmax(torch.stack(logits), dim=-1).tolist()
        results = []
        for row in probs:
            scores = {name: round(p, 6) for name, p in zip(self.labels, row)}
            scores = {name: scores[name] for name in LABELS}
            label = max(scores, key=scores.get)
            results.append(CustomerState(label, scores[label], scores))
        return results
