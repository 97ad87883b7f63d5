"""The trunk: one encoder pass per text feeds every task head.

Each task used to be its own LoRA adapter over the base encoder, so a news event paid
two full passes (sentiment, entities) and a chat message five (sentiment, entities,
intent, customer state, the retrieval embedding). The trunk is one adapter trained on
all tasks at once (``sentinel train trunk``), merged into the encoder when loaded, with
a small head per task:

- ``sentiment``, ``intent``, ``customer_state``: linear layers on the mean-pooled states;
- ``entities``: a linear layer on every token (IOB2 tags of each word's first sub-token);
- ``entity_sentiment``: the sentiment toward one entity of the text: a linear layer on the mean of the
  entity's token states concatenated with the text's mean-pooled state. It reads the token states of the
  same pass as the entity head: ``Trunk.read`` first decodes the entities, then applies this head to the
  span of every ORG and TICKER entity (no second pass);
- ``embedding``: a linear map of the pooled state back onto the base encoder's
  sentence embedding, so the knowledge base keeps its index from the base encoder and
  a chat message's retrieval query costs no extra pass.

Every head reads the same inputs: the text split into words (``models.entities.split_words``)
with word-shape embeddings, which the entity head needs and the others learnt with.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from infra.settings import Settings, get_settings
from models.encoder import (
    NUM_SHAPES,
    LoadedModel,
    encode_texts,
    is_sentinel_artifact,
    load_model,
)
from models.readings import Sentiment
from models.runtime import BatchedModel, pick_device, pick_dtype

SEQUENCE, TOKEN, EMBEDDING, SPAN = "sequence", "token", "embedding", "span"
ENTITY_SENTIMENT = "entity_sentiment"
SENTIMENT_ENTITY_LABELS = ("ORG", "TICKER")  # the entities that get a sentiment of their own


def span_features(states: torch.Tensor, mask: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """The span head's input: per span ``(row, start, end)`` (token positions, end exclusive), the mean of the
    row's states over the span concatenated with the row's mean-pooled state (over ``mask``)."""
    rows, start, end = spans[:, 0], spans[:, 1:2], spans[:, 2:3]
    positions = torch.arange(states.size(1), device=states.device).unsqueeze(0)
    inside = ((positions >= start) & (positions < end)).to(states.dtype).unsqueeze(-1)
    picked = states.index_select(0, rows)
    span_mean = (picked * inside).sum(1) / inside.sum(1).clamp(min=1.0)
    row_mask = mask.index_select(0, rows).unsqueeze(-1).to(states.dtype)
    pooled = (picked * row_mask).sum(1) / row_mask.sum(1).clamp(min=1.0)
    return torch.cat([span_mean, pooled], dim=-1)


def token_range(feature: dict, start: int, end: int) -> tuple[int, int] | None:
    """Token positions ``[a, b)`` of the words of ``feature`` (``encode_texts``) that overlap the characters
    ``[start, end)`` of its text; None when no such word has a token (outside the text, or cut by truncation)."""
    first, words, spans = feature["_first"], feature["_words"], feature["_spans"]
    last = len(feature["input_ids"]) - 1  # the closing [SEP]
    found = [(first[k], first[k + 1] if k + 1 < len(first) else last)
             for k, w in enumerate(words) if spans[w][0] < end and start < spans[w][1]]
    return (found[0][0], found[-1][1]) if found else None


class TrunkNet(nn.Module):
    """The base encoder, a word-shape embedding and one head per task.

    ``heads`` maps a head's name to ``{"kind": "sequence" | "token" | "embedding", "labels": [...]}``.
    ``forward`` computes the encoder once and returns the logits (or, for the embedding
    head, the unit-length embedding) of the heads asked for.
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, dict]):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.shape_embedding = nn.Embedding(NUM_SHAPES, hidden)
        nn.init.zeros_(self.shape_embedding.weight)  # training starts from the pretrained encoder
        self.dropout = nn.Dropout(0.1)
        self.kinds = {name: spec["kind"] for name, spec in heads.items()}
        self.sizes = {name: len(spec["labels"]) for name, spec in heads.items()}
        for name, spec in heads.items():
            width = 2 * hidden if spec["kind"] == SPAN else hidden
            layer = nn.Linear(width, hidden if spec["kind"] == EMBEDDING else len(spec["labels"]))
            if spec["kind"] == EMBEDDING:  # starts as the identity: the base encoder's own embedding
                nn.init.eye_(layer.weight)
                nn.init.zeros_(layer.bias)
            # plain attributes, not a ModuleDict: peft's modules_to_save wraps modules by name
            setattr(self, head_module(name), layer)

    def forward(self, input_ids, attention_mask, shape_ids=None, heads: Sequence[str] | None = None,
                token_type_ids=None, spans: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The heads' outputs. A span head gives its logits for ``spans`` (``span_features``) when they are
        passed, else the token states themselves (its spans are known only after the pass: ``span_logits``)."""
        embeds = self.encoder.embeddings.word_embeddings(input_ids)
        if shape_ids is not None:
            embeds = embeds + self.shape_embedding(shape_ids)
        states = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        out = {}
        for name in heads or self.kinds:
            layer, kind = getattr(self, head_module(name)), self.kinds[name]
            if kind == TOKEN:
                out[name] = layer(self.dropout(states))
            elif kind == SEQUENCE:
                out[name] = layer(self.dropout(pooled))
            elif kind == SPAN:
                out[name] = states if spans is None else layer(self.dropout(span_features(states, attention_mask, spans)))
            else:
                out[name] = F.normalize(layer(pooled), dim=-1)
        return out


    def span_logits(self, name: str, states: Sequence[torch.Tensor], spans: Sequence[tuple[int, int, int]]
                    ) -> torch.Tensor:
        """Logits of span head ``name`` (float32) for ``spans`` ``(text, start, end)`` over per-text token
        states (each cut to its text's own tokens, as ``Trunk.run_heads`` gives them)."""
        layer = getattr(self, head_module(name))
        if not spans:
            return torch.empty(0, self.sizes[name])
        rows = sorted({k for k, _, _ in spans})
        index = {k: i for i, k in enumerate(rows)}
        longest = max(len(states[k]) for k in rows)
        padded = torch.zeros(len(rows), longest, states[rows[0]].size(-1))
        mask = torch.zeros(len(rows), longest)
        for i, k in enumerate(rows):
            padded[i, : len(states[k])] = states[k].float()
            mask[i, : len(states[k])] = 1
        spans_t = torch.tensor([(index[k], a, b) for k, a, b in spans], dtype=torch.long)
        weight = next(layer.parameters())
        return layer(span_features(padded, mask, spans_t).to(weight.device, weight.dtype)).float().cpu()


class FixedHeads(nn.Module):
    """The trunk's forward for fixed heads and inputs: tensors in by position, a tuple out (what a trace takes)."""

    def __init__(self, net: TrunkNet, inputs: tuple[str, ...], heads: tuple[str, ...]):
        super().__init__()
        self.net, self.inputs, self.heads = net, inputs, heads

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(**dict(zip(self.inputs, tensors)), heads=self.heads)
        return tuple(out[name] for name in self.heads)


def head_module(name: str) -> str:
    return f"head_{name}"


def head_view(trunk: LoadedModel, name: str) -> LoadedModel:
    """The trunk seen as one task's model: a task class (``SentimentClassifier`` ...) runs it as its own."""
    spec = trunk.meta["heads"][name]
    return replace(trunk, labels=list(spec["labels"]), meta={**trunk.meta, "head": name, "head_kind": spec["kind"]})


def load_trunk(settings: Settings | None = None) -> LoadedModel:
    """The trunk the settings name, loaded once per process (every head shares its weights)."""
    s = settings or get_settings()
    return _load_trunk(s.trunk_model, s.base_encoder, s.device, s.dtype)


@lru_cache(maxsize=2)
def _load_trunk(source: str, base_encoder: str, device_setting: str, dtype_setting: str) -> LoadedModel:
    device = pick_device(device_setting)
    if not is_sentinel_artifact(source):
        raise FileNotFoundError(f"trunk {source!r} is not a Sentinel artefact folder; train one with "
                                "`sentinel train trunk`, or set SENTINEL_TRUNK_MODEL to one")
    loaded = load_model(source, None, base_encoder, device, pick_dtype(device, dtype_setting),
                        build_trunk=TrunkNet)
    if loaded.meta.get("task") != "trunk":
        raise ValueError(f"{source} is a {loaded.meta.get('task')} model, not a trunk; "
                         "set SENTINEL_TRUNK_MODEL to a folder written by `sentinel train trunk`")
    return loaded


def load_task_model(settings: Settings, setting: str, head: str, auto_class) -> LoadedModel:
    """A task's model: the named model when its setting is set, else the trunk's ``head``."""
    source = getattr(settings, setting)
    if not source:
        return head_view(load_trunk(settings), head)
    device = pick_device(settings.device)
    return load_model(source, auto_class, settings.base_encoder, device, pick_dtype(device, settings.dtype),
                      build_trunk=TrunkNet)


def shared_trunk(tasks: dict, every: bool = True) -> Trunk | None:
    """One ``Trunk`` reading ``tasks`` (head name -> task model) in one pass: all of them when ``every``
    (None when any is a model of its own), else those that are heads of the trunk (None when none is)."""
    heads = {name: t for name, t in tasks.items() if getattr(getattr(t, "loaded", None), "head", None) == name}
    if not heads or (every and len(heads) != len(tasks)):
        return None
    if len({id(t.loaded.model) for t in heads.values()}) != 1:
        return None
    tasks = heads
    first = next(iter(tasks.values()))
    meta = {k: v for k, v in first.loaded.meta.items() if k not in ("head", "head_kind")}
    return Trunk(replace(first.loaded, labels=[], meta=meta), dict(tasks), first.max_length, first.max_batch,
                 first.token_budget)


class Trunk(BatchedModel):
    """Runs the trunk once over many texts and hands every task its results.

    ``tasks`` maps a head's name to the task model that decodes it (a ``SentimentClassifier``,
    ``EntityRecognizer`` ... built on ``head_view``); ``read`` tokenizes once, runs one pass
    for the heads asked for and decodes each head with its task's own ``decode``.
    """

    task = "trunk"

    def __init__(self, loaded: LoadedModel, tasks: dict, max_length: int = 128, max_batch: int = 64,
                 token_budget: int = 8192, trace: bool | None = None):
        super().__init__(loaded, max_length, max_batch, token_budget)
        self.tasks = tasks
        self.trace = (get_settings().trunk_trace and self.device.type == "cpu") if trace is None else trace
        self._traces: dict[tuple, torch.jit.ScriptModule] = {}
        self._trace_lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        return encode_texts(self.loaded.tokenizer, texts, self.max_length)

    def read(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, list]:
        """Each head's results for ``texts`` (the ``embedding`` head gives a tensor of unit rows)."""
        texts = list(texts)
        if not texts:
            return {name: [] for name in heads}
        with self.timings.phase("tokenize", len(texts)):
            features = self.encode(texts)
        outputs = self.run_heads(features, heads)
        with self.timings.phase("decode", len(texts)):
            read = {}
            for name in heads:
                if name == EMBEDDING:  # unit length again in fp32: bf16 rounds the norm to about 1e-3
                    read[name] = F.normalize(torch.stack(outputs[name]), dim=-1)
                elif name != ENTITY_SENTIMENT:
                    read[name] = self.tasks[name].decode(texts, features, outputs[name])
            if ENTITY_SENTIMENT in heads:
                if "entities" not in read:
                    raise ValueError("the entity-sentiment head reads the entities of the same pass: ask for both")
                read[ENTITY_SENTIMENT] = self._entity_sentiments(features, read["entities"], outputs[ENTITY_SENTIMENT])
            return read

    def _entity_sentiments(self, features: list[dict], entities: list[list], states: list[torch.Tensor]) -> list:
        """Per text, per ORG and TICKER entity (in order), its ``Sentiment``; also set as each entity's
        ``sentiment``. An entity whose words were cut by truncation gets none."""
        spans, owners = [], []
        for k, (feature, found) in enumerate(zip(features, entities)):
            for e in found:
                if e.label in SENTIMENT_ENTITY_LABELS and (at := token_range(feature, e.start, e.end)):
                    spans.append((k, *at))
                    owners.append(e)
        readings = self.span_sentiments(states, spans)
        for e, reading in zip(owners, readings):
            e.sentiment = reading
        return [[e.sentiment for e in found if e.label in SENTIMENT_ENTITY_LABELS] for found in entities]

    def span_sentiments(self, states: list[torch.Tensor], spans: list[tuple[int, int, int]]) -> list:
        """The entity-sentiment head's ``Sentiment`` for each ``(text, start, end)`` token span."""
        labels = self.loaded.meta["heads"][ENTITY_SENTIMENT]["labels"]
        probs = torch.softmax(self.loaded.model.span_logits(ENTITY_SENTIMENT, states, spans), dim=-1).tolist()
        out = []
        for row in probs:
            scores = {name: round(p, 6) for name, p in zip(labels, row)}
            label = max(scores, key=scores.get)
            out.append(Sentiment(label, scores[label], scores))
        return out

    def entity_sentiments(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[list]:
        """The sentiment toward given character spans ``(start, end)`` of each text (evaluation on gold spans);
        None for a span with no token (cut by truncation)."""
        texts = list(texts)
        features = self.encode(texts)
        states = self.run_heads(features, [ENTITY_SENTIMENT])[ENTITY_SENTIMENT] if texts else []
        at = [[token_range(f, a, b) for a, b in text_spans] for f, text_spans in zip(features, spans)]
        flat = [(k, *r) for k, rows in enumerate(at) for r in rows if r]
        readings = iter(self.span_sentiments(states, flat))
        return [[next(readings) if r else None for r in rows] for rows in at]

    @property
    def has_entity_sentiment(self) -> bool:
        return ENTITY_SENTIMENT in self.loaded.meta.get("heads", {})

    def run_heads(self, features: list[dict], heads: Sequence[str]) -> dict[str, list[torch.Tensor]]:
        """Per head, per feature: its logits (token heads: one row per token), in input order."""
        out = self.run_batches(features, lambda batch: self.forward(batch, tuple(heads)))
        return {name: out.get(name, []) for name in heads}

    def forward(self, batch: dict[str, torch.Tensor], heads: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """One encoder pass for ``heads``.

        On CPU (``trunk_trace``) the pass runs as a TorchScript trace, one per set of heads, which
        releases the GIL for the whole pass. Eager PyTorch takes the GIL back between every two
        operations, so inside the worker a model thread stalls whenever the event loop or the
        database thread runs Python (``docs/BENCHMARKS.md``, end to end). The trace gives the same
        numbers as the eager pass for every batch shape (``tests/test_trunk.py``).
        """
        model = self.loaded.model
        if not self.trace or model.training:
            return model(**batch, heads=heads)
        key = (heads, tuple(batch))
        traced = self._traces.get(key)
        if traced is None:
            with self._trace_lock, warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in transformers' code
                # torch.jit is deprecated for torch.export and torch.compile, but an exported program runs
                # its graph in Python (the GIL again) and compiling needs a C++ toolchain and minutes per shape
                warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
                traced = self._traces.get(key)  # another thread may have traced it meanwhile
                if traced is None:
                    traced = self._traces[key] = torch.jit.trace(
                        FixedHeads(model, key[1], heads), tuple(batch.values()), check_trace=False)
        with torch.jit.optimized_execution(False):  # no shape profiling: batch shapes vary (thread-local)
            return dict(zip(heads, traced(*batch.values())))

    @property
    def heads(self) -> list[str]:
        """The heads ``read`` gives: the tasks', and the embedding head where the trunk has one."""
        span = [ENTITY_SENTIMENT] if self.has_entity_sentiment and "entities" in self.tasks else []
        return [*self.tasks, *span, *([EMBEDDING] if EMBEDDING in self.loaded.meta["heads"] else [])]

    def warm_up(self) -> None:
        self.read(["Warm-up sentence for the model runtime."] * 2, self.heads)
