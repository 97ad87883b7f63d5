"""The base encoder's own sentence embedding: all-MiniLM-L6-v2, mean-pooled, unit length.

Two readers need the embedding the base encoder was trained for (sentence similarity), not the
trunk's fine-tuned states: the knowledge base's retrieval index (``models.knowledge``) and the
headlines of stories (``models.analysis``; docs/MODELS.md, "Stories": the trunk's embedding head,
a linear map back onto this space, reads paraphrases worse than the base encoder itself).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from transformers import AutoModel, AutoTokenizer

from infra.settings import Settings, get_settings
from models.encoder import base_encoder_path
from models.runtime import collate, pick_device, plan_batches, to_device


def sentence_embeddings(tokenizer, encoder, device: torch.device, texts: list[str], max_length: int = 128
                        ) -> torch.Tensor:
    """Unit-length mean-pooled embeddings of ``texts``, computed in length-sorted batches."""
    out = torch.empty(len(texts), encoder.config.hidden_size)
    if not texts:
        return out
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    for batch_ids in plan_batches([len(x) for x in ids], 64, 8192):
        batch = to_device(collate([{"input_ids": ids[i]} for i in batch_ids]), device)
        with torch.inference_mode():
            states = encoder(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        out[batch_ids] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
    return out


class SentenceEncoder:
    """``embed(texts)``: the base encoder's unit sentence embeddings (a tensor of rows)."""

    def __init__(self, tokenizer, encoder, device: torch.device, max_length: int = 128):
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.device = device
        self.max_length = max_length

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "SentenceEncoder":
        s = settings or get_settings()
        return _load(base_encoder_path(s.base_encoder), s.device)

    def embed(self, texts: list[str]) -> torch.Tensor:
        return sentence_embeddings(self.tokenizer, self.encoder, self.device, list(texts), self.max_length)


@lru_cache(maxsize=2)
def _load(base: str, device_setting: str) -> SentenceEncoder:
    """One copy per worker: the chat retriever and the news headlines share it (inference only)."""
    device = pick_device(device_setting)
    encoder = AutoModel.from_pretrained(base, add_pooling_layer=False).to(device).eval()
    return SentenceEncoder(AutoTokenizer.from_pretrained(base), encoder, device)
