"""The training loop's weight averaging: the average competes on validation and is what gets saved."""

import json

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.encoder import base_encoder_path, load_model
from models.training import TrainConfig, TrainJob, train

PROBE = ["Operating profit fell sharply.", "Net sales rose 25% in the quarter."]


def _probe_logits(loaded) -> torch.Tensor:
    enc = loaded.tokenizer(PROBE, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return loaded.logits({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}).float()


def test_weight_average_is_validated_and_saved_when_it_wins(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path())
    texts = [f"Company {i} reported {'a loss' if i % 2 else 'a record profit'} this year." for i in range(64)]
    features = [{"input_ids": ids, "labels": i % 2}
                for i, ids in enumerate(tokenizer(texts, truncation=True, max_length=32)["input_ids"])]
    seen = []

    def validate(loaded, _max_length):
        # A stand-in metric: the loop validates the epoch's weights first, then the average; it scores
        # the average higher and records what each candidate predicts.
        seen.append(_probe_logits(loaded))
        return 0.5 if len(seen) == 1 else 0.9

    job = TrainJob("sentiment", ["negative", "positive"], "sequence", False, features, validate, "accuracy")
    config = TrainConfig(epochs=1, lr=5e-3, batch_size=16, max_length=32, average_from=1, average_per_epoch=4)
    meta = train(job, tmp_path, config)

    assert meta["history"][0]["averaged_snapshots"] == 4
    assert meta["weights"].startswith("average of 4 snapshots")
    assert not torch.allclose(seen[0], seen[1], atol=1e-4), "the average should differ from the last weights"
    saved = load_model(str(tmp_path), AutoModelForSequenceClassification, "", torch.device("cpu"), torch.float32)
    assert torch.allclose(_probe_logits(saved), seen[1], atol=1e-4), "the saved artefact is the averaged network"
    assert json.loads((tmp_path / "sentinel.json").read_text())["val_accuracy"] == 0.9
