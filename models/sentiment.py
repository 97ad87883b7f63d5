"""News sentiment: negative / neutral / positive with probabilities.

With ``SENTINEL_SENTIMENT_CASCADE=on`` the readings the student (the trunk's head) is unsure of go to the
teacher (``SentimentCascade``) inside the same call.
"""

from __future__ import annotations

from collections.abc import Sequence
import torch

from infra.settings import Settings, get_settings
from models.classifier import TextClassifier
from models.readings import Sentiment  # noqa: F401  (re-exported: models.sentiment.Sentiment)

LABELS = ["negative", "neutral", "positive"]
# Names other checkpoints use for the same classes (e.g. FinBERT, twitter-roberta).
_ALIASES = {"neg": "negative", "bearish": "negative", "label_0": "negative",
            "neu": "neutral", "label_1": "neutral",
            "pos": "positive", "bullish": "positive", "label_2": "positive"}


def margin(reading: Sentiment) -> float:
    """Top probability minus the second: how sure a reading is."""
    top, second = sorted(reading.scores.values(), reverse=True)[:2]
    return top - second


def combined(student: Sentiment, teacher: Sentiment) -> Sentiment:
    """The mean of two readings' probabilities, and its top label: the student knows news headlines, the teacher
    the longer sentences of filings and reports, and the mean beats either alone (docs/MODELS.md, the cascade)."""
    scores = {name: round((student.scores[name] + teacher.scores[name]) / 2, 6) for name in LABELS}
    label = max(scores, key=scores.get)
    return Sentiment(label, scores[label], scores, cascaded=True)


class SentimentCascade:
    """The student's unsure readings read again by the teacher.

    ``refine`` sends the texts whose student margin (``margin``) is below ``threshold`` to the teacher in
    one batched call, in the calling thread (the student's own lane: no process or thread of its own), and
    returns for them the mean of the two readings (``combined``), and the student's for the others.
    """

    def __init__(self, teacher, threshold: float):
        self.teacher, self.threshold = teacher, threshold
        self.seen = self.routed = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "SentimentCascade":
        teacher = SentimentClassifier.from_settings(settings.model_copy(update={
            "sentiment_model": settings.sentiment_cascade_model, "sentiment_cascade": "off"}))
        return cls(teacher, settings.sentiment_cascade_margin)

    def route(self, readings: list[Sentiment]) -> list[int]:
        """Indices of the readings that go to the teacher."""
        return [i for i, r in enumerate(readings) if margin(r) < self.threshold]

    def refine(self, texts: Sequence[str], readings: list[Sentiment]) -> list[Sentiment]:
        routed = self.route(readings)
        self.seen += len(readings)
        self.routed += len(routed)
        if not routed:
            return readings
        out = list(readings)
        for i, reading in zip(routed, self.teacher.predict([texts[i] for i in routed])):
            out[i] = combined(readings[i], reading)
        return out


class SentimentClassifier(TextClassifier):
    task = "sentiment"
    setting = "sentiment_model"
    cascade: SentimentCascade | None = None  # set by from_settings when SENTINEL_SENTIMENT_CASCADE=on

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "SentimentClassifier":
        s = settings or get_settings()
        model = super().from_settings(s)
        if s.sentiment_cascade == "on" and s.sentiment_model != s.sentiment_cascade_model:
            model.cascade = SentimentCascade.from_settings(s)  # the teacher is loaded only here
        return model

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
        return self.cascade.refine(texts, results) if self.cascade is not None else results
