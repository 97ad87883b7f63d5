"""Sentiment and entities together: what `sentinel analyze` and the news agent run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from infra.settings import Settings, get_settings
from models.entities import EntityRecognizer
from models.runtime import model_thread_pool, use_threads
from models.sentences import SentenceEncoder
from models.sentiment import SentimentClassifier
from models.trunk import EMBEDDING, ENTITY_SENTIMENT, shared_trunk


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
    """Sentiment and entities for the same texts.

    With a trunk that has an entity-sentiment head, every ORG and TICKER entity also carries the
    sentiment toward it (``Entity.sentiment``), read from the same pass.

    When both are heads of the trunk (the default), one encoder pass gives both
    (``models/trunk.py``). On CPU the work is split over two threads, each on half of the
    intra-op threads: with the trunk, each thread reads half of the texts; with two models
    of their own, each thread runs one model. Inside the worker this kept the models at
    their standalone speed: with one torch thread team on all cores, every wake-up of the
    consumer or database thread stalled the whole team (see docs/BENCHMARKS.md).
    """

    def __init__(self, sentiment: SentimentClassifier, entities: EntityRecognizer, threads_per_task: int = 0,
                 headlines: SentenceEncoder | None = None):
        self.sentiment = sentiment
        self.entities = entities
        self.headlines = headlines  # the story embedding's encoder; None: the trunk's embedding head
        self.trunk = shared_trunk({"sentiment": sentiment, "entities": entities})
        self._lanes = model_thread_pool(2, threads_per_task, "task") if threads_per_task else None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "Analyzer":
        s = settings or get_settings()
        sentiment, entities = SentimentClassifier.from_settings(s), EntityRecognizer.from_settings(s)
        threads = use_threads(s.torch_threads)
        side_by_side = s.parallel_tasks == "on" or (
            s.parallel_tasks == "auto" and sentiment.device.type == "cpu" and threads >= 2)
        headlines = SentenceEncoder.from_settings(s) if s.story_embedding == "base" else None
        return cls(sentiment, entities, max(1, threads // 2) if side_by_side else 0, headlines)

    def timed(self) -> list:
        """The models whose per-phase timings are exported: the trunk, or the two task models."""
        return [self.trunk] if self.trunk is not None else [self.sentiment, self.entities]

    @property
    def version(self) -> str:
        if self.trunk is not None:
            return self.trunk.loaded.version
        return f"{self.sentiment.loaded.version}+{self.entities.loaded.version}"[:128]

    def warm_up(self) -> None:
        if self.trunk is None:
            self.sentiment.warm_up()
            self.entities.warm_up()
        self.analyze_texts(["Warm-up sentence for the task threads."])
        if self.headlines is not None:
            self.headlines.embed(["Warm-up headline"])

    @property
    def embeds(self) -> bool:
        """Whether ``analyze_texts`` can read embeddings: from the base encoder, or the trunk's embedding head."""
        return self.headlines is not None or (self.trunk is not None and EMBEDDING in self.trunk.heads)

    def analyze_texts(self, texts: list[str], side_by_side: bool = True,
                      headline_ends: list[int] | None = None) -> list[tuple]:
        """(sentiment, entities) per text; ``side_by_side=False`` runs the tasks in the calling thread.

        ``headline_ends``: (sentiment, entities, embedding) per text instead, the embedding (a unit tensor, or
        None when there is none to read) of the text's first ``headline_ends[i]`` characters: by default the
        base encoder's own, from a short pass over the headlines (``SENTINEL_STORY_EMBEDDING=base``). With the
        trunk's embedding head instead, a text that is all headline gets it from the same pass; the others from
        a second pass over their headlines alone: pooled over the headline inside the whole text, the embedding
        drifts too far from the headline's own (median cosine 0.87 on Reuters headlines with their
        descriptions) for the story threshold, which is chosen on headlines alone (docs/MODELS.md, "Stories")."""
        if headline_ends is not None and self.headlines is not None:
            read = self.analyze_texts(texts, side_by_side)
            own = self.headlines.embed([t[:end] for t, end in zip(texts, headline_ends)])
            return [(*pair, embedding) for pair, embedding in zip(read, own)]
        if self.trunk is not None:
            return self._read_trunk(texts, side_by_side, headline_ends if self.embeds else None, headline_ends)
        if self._lanes is None or not side_by_side:
            pairs = list(zip(self.sentiment.predict(texts), self.entities.predict(texts)))
        else:
            sentiments = self._lanes.submit(self.sentiment.predict, texts)
            entities = self._lanes.submit(self.entities.predict, texts)
            pairs = list(zip(sentiments.result(), entities.result()))
        return pairs if headline_ends is None else [(*pair, None) for pair in pairs]

    def _read_trunk(self, texts: list[str], side_by_side: bool, ends: list[int] | None,
                    asked: list[int] | None) -> list[tuple]:
        heads = ["sentiment", "entities", *([ENTITY_SENTIMENT] if self.trunk.has_entity_sentiment else []),
                 *([EMBEDDING] if ends is not None else [])]

        def rows(read: dict) -> list[tuple]:
            if ends is not None:
                return list(zip(read["sentiment"], read["entities"], read[EMBEDDING]))
            pairs = zip(read["sentiment"], read["entities"])
            return [(*pair, None) for pair in pairs] if asked is not None else list(pairs)

        if ends is not None:
            return self._with_headline_embeddings(rows(self._read_split(texts, heads, side_by_side)), texts, ends)
        return rows(self._read_split(texts, heads, side_by_side))

    def _with_headline_embeddings(self, read: list[tuple], texts: list[str], ends: list[int]) -> list[tuple]:
        """Each row's embedding replaced by its headline's own where the headline is not the whole text."""
        partial = [i for i, (t, end) in enumerate(zip(texts, ends)) if end < len(t)]
        if not partial:
            return read
        own = self.trunk.read([texts[i][:ends[i]] for i in partial], [EMBEDDING])[EMBEDDING]
        for i, embedding in zip(partial, own):
            read[i] = (*read[i][:2], embedding)
        return read

    def _read_split(self, texts: list[str], heads: list[str], side_by_side: bool) -> dict:
        """The trunk's reading of ``texts``, split over the two task threads when there are."""
        if self._lanes is None or not side_by_side or len(texts) < 2:
            return self.trunk.read(texts, heads)
        # Texts dealt alternately in order of length: the two halves carry about the same number of
        # tokens, so neither thread waits long for the other (the runtime sorts each half again).
        by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        halves = (by_length[0::2], by_length[1::2])
        parts = [self._lanes.submit(self.trunk.read, [texts[i] for i in half], heads) for half in halves]
        out: dict = {name: [None] * len(texts) for name in heads}
        for half, part in zip(halves, parts):
            read = part.result()
            for name in heads:
                for i, value in zip(half, read[name]):
                    out[name][i] = value
        return out

    def analyze(self, items: Iterable[tuple[str, str]], chunk: int = 256, universe=None) -> Iterator[dict]:
        """Records of ``sentinel analyze``; with a company ``universe`` (``models.companies.linking``), every ORG
        and TICKER entity carries its ``company``."""
        from models.companies.linking import Universe, attach_links, correct_mentions

        universe = universe or Universe([])
        items = list(items)
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            for (item_id, text), (sentiment, entities) in zip(part, self.analyze_texts([t for _, t in part])):
                correct_mentions(entities, text, universe)
                attach_links(entities, text, universe)
                yield {"id": item_id, "text": text, "sentiment": sentiment.as_dict(),
                       "entities": [e.as_dict() for e in entities]}
