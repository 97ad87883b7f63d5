"""How the customer feels: calm, frustrated, angry or leaving, with probabilities.

Chat escalation used the financial sentiment model's ``negative`` probability, which
learnt news ("loss", "decline") and scores an angry customer near zero. This model is
trained for customer messages (``sentinel train customer-state``; the set is built in
``models/training/datasets.py``, ``customer_state_sets``, and described in docs/MODELS.md):

- ``calm``: requests, questions and plain complaints stated calmly;
- ``frustrated``: impatient, fed up, disappointed, asking again;
- ``angry``: hostile: insults, swearing at the bank, shouting, threats;
- ``leaving``: says they will or want to leave (close the account, move their money).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.classifier import TextClassifier

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


class CustomerStateClassifier(TextClassifier):
    task = "customer_state"
    setting = "customer_state_model"

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
