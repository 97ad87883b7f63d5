"""Text classifiers: one label per text from a sequence-classification head.

Sentiment, chat intent and the customer's state differ only in the setting that names
their model and in how they read its probabilities (``decode``); loading and encoding
are here, once.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import AutoModelForSequenceClassification

from infra.settings import Settings, get_settings
from models.encoder import encode_texts
from models.runtime import BatchedModel


class TextClassifier(BatchedModel):
    setting: str  # the Settings field that names a model of its own (artefact folder, HF id or folder)

    @classmethod
    def from_settings(cls, settings: Settings | None = None):
        """The model the task's setting names, or (setting empty, the default) the trunk's head."""
        from models.trunk import load_task_model

        s = settings or get_settings()
        loaded = load_task_model(s, cls.setting, cls.task, AutoModelForSequenceClassification)
        return cls(loaded, s.max_length, s.max_batch, s.token_budget)

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        if self.loaded.word_features:  # a trunk head reads the trunk's inputs
            return encode_texts(self.loaded.tokenizer, texts, self.max_length)
        enc = self.loaded.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [{"input_ids": ids} for ids in enc["input_ids"]]
