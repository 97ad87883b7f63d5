"""What the classifiers read, as plain values: every head and every consumer can import them without the models."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sentiment:
    label: str
    score: float
    scores: dict[str, float]
    cascaded: bool = False  # read by the cascade's teacher (``SentimentCascade``), not the student

    def as_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "scores": self.scores}
