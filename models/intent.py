"""Chat intent: one of the 77 banking intents (or the labels of any model set in the settings).

With ``SENTINEL_INTENT_TEACHER_MODEL`` set, a second intent model (the teacher encoder fine-tuned on the same
intents) reads every message in the same call, and the intent comes from the mean of the two models' logits:
the pair is wrong with confidence far less often than either alone, which is what auto-reply needs
(docs/MODELS.md, auto-reply).
"""

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
    teacher: IntentClassifier | None = None  # set by from_settings when SENTINEL_INTENT_TEACHER_MODEL is set

    @classmethod
    def from_settings(cls, settings: Settings | None = None):
        """The served intent model (with its teacher, if set), its scores temperature-scaled by the calibration
        fitted on it (if any)."""
        from models.calibration import calibration_for

        s = settings or get_settings()
        model = super().from_settings(s)
        if s.intent_teacher_model:
            model.teacher = super().from_settings(s.model_copy(update={"intent_model": s.intent_teacher_model}))
            model.teacher.task = "intent_teacher"  # its timings and description apart from the served head's
            if model.teacher.labels != model.labels:
                raise ValueError(f"the intent teacher {s.intent_teacher_model} has other intents than the served "
                                 "intent model; train it on the same data (`sentinel train intent --teacher`)")
        calibration = calibration_for(s)
        if calibration is not None:
            model.temperature = calibration.temperature
        return model

    def teacher_logits(self, texts) -> torch.Tensor | None:
        """The teacher's logits for ``texts`` (one batched call), or None without a teacher."""
        if self.teacher is None:
            return None
        return torch.stack(self.teacher.run(self.teacher.encode(texts))).float()

    def decode(self, texts, features, logits: list[torch.Tensor]) -> list[Intent]:
        return self.read(torch.stack(logits).float(), self.teacher_logits(texts))

    def read(self, logits: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> list[Intent]:
        """Intents from the served model's logits, averaged with the teacher's when given, at ``temperature``."""
        if teacher_logits is not None:
            logits = (logits + teacher_logits) / 2
        probs = torch.softmax(logits / self.temperature, dim=-1)
        top, idx = probs.topk(min(3, probs.size(-1)), dim=-1)
        results = []
        for scores, ids in zip(top.tolist(), idx.tolist()):
            ranked = [(self.labels[i], round(s, 6)) for s, i in zip(scores, ids)]
            results.append(Intent(ranked[0][0], ranked[0][1], ranked[1:]))
        return results
