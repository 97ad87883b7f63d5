"""The desk's corrected intents added to banking77's training rows (``sentinel train intent --feedback``).

How they are merged (``merge_corrections``):
- a correction counts only when its intent is one of the labels being trained (others are skipped and counted);
- texts are compared after collapsing whitespace and case; the latest correction of a text wins, so each text
  is added once;
- a text that is in banking77's validation or test split is left out (the held-out splits stay untouched and
  unseen, so validation and ``sentinel eval`` measure what they measured before);
- a text that is already a banking77 training row replaces that row (the reviewer's label is the newer one);
- the corrections come first in the training rows, so a ``--limit`` smoke run trains on them too; batches are
  shuffled, so the place changes nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from models.training.datasets import TextSplit


@dataclass
class FeedbackReport:
    read: int = 0  # corrections read
    added: int = 0  # texts added to the training rows (once each)
    replaced: int = 0  # banking77 training rows a correction replaced
    superseded: int = 0  # corrections of a text corrected again later
    held_out: int = 0  # skipped: the text is in banking77's validation or test split
    unknown_intent: int = 0  # skipped: not one of the trained labels

    def summary(self) -> str:
        return (f"desk feedback: {self.read} corrected intents read, {self.added} added to the training rows "
                f"({self.replaced} replacing banking77 rows), skipped: {self.superseded} corrected again later, "
                f"{self.held_out} in the validation or test split, {self.unknown_intent} with an unknown intent")


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def merge_corrections(splits: dict[str, TextSplit], corrections: Iterable[tuple[str, str]],
                      labels: list[str]) -> tuple[TextSplit, FeedbackReport]:
    """Training rows: the corrections (``(text, intent)``, oldest first), then banking77's train split without
    the texts they replace. The validation and test splits are read, never changed."""
    report = FeedbackReport()
    known = set(labels)
    latest: dict[str, tuple[str, str]] = {}
    for text, intent in corrections:
        report.read += 1
        if intent not in known or not text.strip():
            report.unknown_intent += 1
            continue
        key = _key(text)
        if key in latest:
            report.superseded += 1
            del latest[key]  # the newest correction also takes the newest place
        latest[key] = (text, intent)
    held = {_key(t) for part in ("val", "test") if part in splits for t in splits[part].texts}
    added = {k: v for k, v in latest.items() if k not in held}
    report.held_out = len(latest) - len(added)
    report.added = len(added)
    train = splits["train"]
    kept = [(t, y) for t, y in zip(train.texts, train.labels) if _key(t) not in added]
    report.replaced = len(train.texts) - len(kept)
    rows = list(added.values()) + kept
    return TextSplit([t for t, _ in rows], [y for _, y in rows]), report


def intent_job(data: Path, base_setting: str, max_length: int, corrections: Iterable[tuple[str, str]]):
    """``training.intent_job`` with the corrections merged into its training rows: (job, report)."""
    from transformers import AutoTokenizer

    from models.encoder import base_encoder_path
    from models.training import datasets
    from models.training import train as training

    names = datasets.banking77_labels(data)
    splits = datasets.banking77_splits(data)
    merged, report = merge_corrections(splits, corrections, names)
    tokenizer = AutoTokenizer.from_pretrained(base_encoder_path(base_setting))
    job = training.TrainJob(
        "intent", names, "sequence", False,
        training._sequence_features(tokenizer, merged.texts, merged.labels, names, max_length),
        training.intent_validator(splits["val"]),
        "accuracy", ["banking77/train.csv (90% stratified part)",
                     f"desk feedback: {report.added} corrected intents from reply_reviews "
                     f"({report.replaced} replacing banking77 rows)"])
    return job, report
