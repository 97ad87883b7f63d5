"""Text classifiers: one label per text from a sequence-classification head.

Sentiment, chat intent and the customer's state differ only in the setting that names
their model and in how they read its probabilities (``decode``); loading and encoding
are here, once.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import AutoModelForSequenceClassification

from infra.settings import Settings, get_settings
from models.encoder import load_model
from models.runtime import BatchedModel, pick_device, pick_dtype


class TextClassifier(BatchedModel):
    setting: str  # the Settings field that names the model (artefact folder, HF id or folder)

    @classmethod
    def from_settings(cls, settings: Settings | None = None):
        s = settings or get_settings()
        device = pick_device(s.device)
        loaded = load_model(getattr(s, cls.setting), AutoModelForSequenceClassification, s.base_encoder,
                            device, pick_dtype(device))
        return cls(loaded, s.max_length, s.max_batch, s.token_budget)

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        enc = self.loaded.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [{"input_ids": ids} for ids in enc["input_ids"]]
