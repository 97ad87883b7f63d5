"""Sentiment and entities together: what `sentinel analyze` and the news agent run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from infra.settings import Settings, get_settings
from models.entities import EntityRecognizer
from models.sentiment import SentimentClassifier


def read_jsonl_inputs(path: Path) -> list[tuple[str, str]]:
    """(id, text) pairs from a JSONL file of {"id", "text"} objects; errors name the line."""
    items = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {n} is not JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError(f"line {n} has no string field 'text'")
            items.append((str(obj.get("id", n)), obj["text"]))
    return items


class Analyzer:
    def __init__(self, sentiment: SentimentClassifier, entities: EntityRecognizer):
        self.sentiment = sentiment
        self.entities = entities

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Analyzer":
        s = settings or get_settings()
        return cls(SentimentClassifier.from_settings(s), EntityRecognizer.from_settings(s))

    @property
    def version(self) -> str:
        return f"{self.sentiment.loaded.version}+{self.entities.loaded.version}"[:128]

    def warm_up(self) -> None:
        self.sentiment.warm_up()
        self.entities.warm_up()

    def analyze_texts(self, texts: list[str]) -> list[tuple]:
        return list(zip(self.sentiment.predict(texts), self.entities.predict(texts)))

    def analyze(self, items: Iterable[tuple[str, str]], chunk: int = 256) -> Iterator[dict]:
        items = list(items)
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            for (item_id, text), (sentiment, entities) in zip(part, self.analyze_texts([t for _, t in part])):
                yield {"id": item_id, "text": text, "sentiment": sentiment.as_dict(),
                       "entities": [e.as_dict() for e in entities]}
