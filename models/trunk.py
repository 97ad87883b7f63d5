"""The trunk: one encoder pass per text feeds every task head.

Each task used to be its own LoRA adapter over the base encoder, so a news event paid
two full passes (sentiment, entities) and a chat message five (sentiment, entities,
intent, customer state, the retrieval embedding). The trunk is one adapter trained on
all tasks at once (``sentinel train trunk``), merged into the encoder when loaded, with
a small head per task:

- ``sentiment``, ``intent``, ``customer_state``: linear layers on the mean-pooled states;
- ``entities``: a linear layer on every token (IOB2 tags of each word's first sub-token);
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
from models.encoder import NUM_SHAPES, LoadedModel, is_sentinel_artifact, load_model
from models.entities import encode_texts
from models.runtime import BatchedModel, pick_device, pick_dtype

SEQUENCE, TOKEN, EMBEDDING = "sequence", "token", "embedding"


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
        for name, spec in heads.items():
            layer = nn.Linear(hidden, hidden if spec["kind"] == EMBEDDING else len(spec["labels"]))
            if spec["kind"] == EMBEDDING:  # starts as the identity: the base encoder's own embedding
                nn.init.eye_(layer.weight)
                nn.init.zeros_(layer.bias)
            # plain attributes, not a ModuleDict: peft's modules_to_save wraps modules by name
            setattr(self, head_module(name), layer)

    def forward(self, input_ids, attention_mask, shape_ids=None, heads: Sequence[str] | None = None,
                token_type_ids=None) -> dict[str, torch.Tensor]:
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
            else:
                out[name] = F.normalize(layer(pooled), dim=-1)
        return out


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
    loaded = load_model(source, None, base_encoder, device, pick_dtype(device, dtype_setting))
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
    return load_model(source, auto_class, settings.base_encoder, device, pick_dtype(device, settings.dtype))


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
                else:
                    read[name] = self.tasks[name].decode(texts, features, outputs[name])
            return read

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
        return [*self.tasks, *([EMBEDDING] if EMBEDDING in self.loaded.meta["heads"] else [])]

    def warm_up(self) -> None:
        self.read(["Warm-up sentence for the model runtime."] * 2, self.heads)
