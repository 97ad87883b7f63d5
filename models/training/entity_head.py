"""The trunk's entity head trained again on real headlines, over the trunk's frozen token states.

The trunk learnt its entity head on CoNLL-2003 (Reuters news of 1996); the headlines Sentinel reads are 2020
Reuters and CNBC headlines, title-cased and full of company names, where the head misses ORG mentions
(``docs/MODELS.md``, ORG mentions in real headlines). Only the head's one linear layer is trained here, from its
current weights: the encoder, its adapter and the word-shape embedding are frozen, so every other head reads exactly
what it read before, and CoNLL-2003 train stays in the mix so the head keeps its four types.

The training rows:
- CoNLL-2003 train, weight 1;
- the labelled headlines' training part (``news_headline_orgs.jsonl``, split "train"), weight ``HEADLINE_WEIGHT``:
  their ORG spans as labelled; only ORG is labelled there, so a word the head reads as PER, LOC or MISC outside
  them is left out of the loss rather than taught as O.

The held-out test part of the labelled set is never read here; the weight was chosen by 4-fold cross-validation on
the training part (``python -m bench.entity_head``, ``docs/MODELS.md``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from infra.progress import console
from infra.settings import get_settings
from models.entities import IGNORE, EntityRecognizer, _iob
from models.encoder import encode_texts, encode_words
from models.training import datasets
from models.training.headline_orgs import load_headline_orgs
from models.trunk import ENTITY_SENTIMENT, Trunk, head_module

HEADLINE_WEIGHT = 1.0  # the labelled headlines against CoNLL's sentences (chosen by cross-validation)
ADAPTER = "adapter_model.safetensors"
# The entity head as `sentinel train trunk` wrote it, kept beside the adapter the first time the head is replaced:
# training always starts from it, so the command gives the same head however often it runs.
TRUNK_HEAD = "entity_head_from_trunk.safetensors"
HEAD_KEYS = tuple(f"base_model.model.{head_module('entities')}.{p}" for p in ("weight", "bias"))


class HeadRows:
    """Word rows for the head: the trunk's token state at each word's first sub-token, and its label index."""

    def __init__(self, recognizer: EntityRecognizer):
        self.recognizer = recognizer
        self.trunk = Trunk(recognizer.loaded, {"entities": recognizer}, trace=False)
        self.index = {label: k for k, label in enumerate(recognizer.labels)}
        self.head = start_head(Path(recognizer.loaded.source),
                               getattr(recognizer.loaded.model, head_module("entities")))

    def states(self, features: list[dict]) -> list[torch.Tensor]:
        """Per feature, its words' states (``_first`` rows of the last hidden layer)."""
        rows = self.trunk.run_heads(features, [ENTITY_SENTIMENT])[ENTITY_SENTIMENT]  # a span head's states
        return [st[f["_first"]] for f, st in zip(features, rows)]

    def tags(self, states: torch.Tensor) -> list[str]:
        with torch.inference_mode():
            return [_iob(self.recognizer.labels[j]) for j in self.head(states).argmax(-1).tolist()]

    def conll(self, data: Path, part: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        split = datasets.conll_split(data, part)
        features = encode_words(self.recognizer.loaded.tokenizer, split.words, 128)
        labels = [torch.tensor([self.index[tags[w]] for w in f["_words"]]) for f, tags in zip(features, split.tags)]
        return self.states(features), labels

    def labelled_headlines(self, rows: Sequence[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features = encode_texts(self.recognizer.loaded.tokenizer, [r["text"] for r in rows], 128)
        states = self.states(features)
        labels = []
        for r, f, st in zip(rows, features, states):
            y, previous = [], None
            for w, tag in zip(f["_words"], self.tags(st)):
                a, b = f["_spans"][w]
                org = next((k for k, o in enumerate(r["orgs"]) if o["start"] < b and a < o["end"]), None)
                if org is not None:
                    y.append(self.index["I-ORG" if org == previous else "B-ORG"])
                elif tag != "O" and not tag.endswith("-ORG"):
                    y.append(IGNORE)  # only ORG is labelled in this set: no verdict on other types
                else:
                    y.append(self.index["O"])
                previous = org
            labels.append(torch.tensor(y, dtype=torch.long))
        return states, labels


def start_head(trunk: Path, served: nn.Module) -> nn.Linear:
    """The head training starts from: the trunk's own (``TRUNK_HEAD``) when the served one was replaced, else the
    served one; float32, on the CPU."""
    layer = nn.Linear(served.in_features, served.out_features)
    saved = trunk / TRUNK_HEAD
    weights = load_file(str(saved)) if saved.is_file() else {HEAD_KEYS[0]: served.weight, HEAD_KEYS[1]: served.bias}
    with torch.no_grad():
        layer.weight.copy_(weights[HEAD_KEYS[0]].float())
        layer.bias.copy_(weights[HEAD_KEYS[1]].float())
    return layer.eval()


def fit_head(start: nn.Linear, parts: Sequence[tuple[list[torch.Tensor], list[torch.Tensor], float]],
             epochs: int, lr: float, seed: int, batch: int = 2048) -> nn.Linear:
    """A copy of ``start`` trained on ``parts`` (word states, labels, weight), weighted cross-entropy."""
    torch.manual_seed(seed)
    layer = nn.Linear(start.in_features, start.out_features)
    with torch.no_grad():
        layer.weight.copy_(start.weight.float())
        layer.bias.copy_(start.bias.float())
    x = torch.cat([s.float() for states, _, _ in parts for s in states])
    y = torch.cat([t for _, labels, _ in parts for t in labels])
    w = torch.cat([torch.full((len(t),), weight) for _, labels, weight in parts for t in labels])
    keep = y != IGNORE
    x, y, w = x[keep], y[keep], w[keep]
    optimiser = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=0.01)
    for _ in range(epochs):
        for rows in torch.randperm(len(x)).split(batch):
            loss = F.cross_entropy(layer(F.dropout(x[rows], 0.1)), y[rows], reduction="none")
            loss = (loss * w[rows]).sum() / w[rows].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return layer.eval()


def write_head(trunk: Path, out: Path, layer: nn.Linear, record: dict) -> None:
    """``out``: a copy of the trunk artefact ``trunk`` (or itself) with the entity head's weights replaced, and
    ``record`` kept in its ``sentinel.json`` under ``entity_head``."""
    if out.resolve() != trunk.resolve():
        shutil.copytree(trunk, out, dirs_exist_ok=True)
    tensors = load_file(str(out / ADAPTER))
    if not all(key in tensors for key in HEAD_KEYS):
        raise ValueError(f"{trunk} has no entity head ({HEAD_KEYS[0]})")
    if not (out / TRUNK_HEAD).is_file():
        save_file({key: tensors[key] for key in HEAD_KEYS}, str(out / TRUNK_HEAD), metadata={"format": "pt"})
    for key, value in zip(HEAD_KEYS, (layer.weight, layer.bias)):
        tensors[key] = value.detach().to(tensors[key].dtype).contiguous()
    save_file(tensors, str(out / ADAPTER), metadata={"format": "pt"})
    meta_path = out / "sentinel.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["entity_head"] = record
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def train_entity_head(data: Path, trunk: Path, out: Path, epochs: int = 4, lr: float = 1e-3, seed: int = 13,
                      headline_weight: float = HEADLINE_WEIGHT) -> dict:
    """Train the trunk's entity head again (module docstring) and write it to ``out``; the record it keeps."""
    datasets._need(data / "conll2003" / "train.txt")  # before minutes of reading
    rows = HeadRows(recognizer_of(trunk))
    console.print("[dim]reading CoNLL-2003 train and the labelled headlines with the frozen trunk[/]")
    conll = rows.conll(data, "train")
    train_part = load_headline_orgs(split="train")
    labelled = rows.labelled_headlines(train_part)
    layer = fit_head(rows.head, [(*conll, 1.0), (*labelled, headline_weight)], epochs, lr, seed)
    record = {"trained_on": {"conll2003_train": len(conll[0]), "headline_orgs_train": len(train_part)},
              "headline_weight": headline_weight, "epochs": epochs, "lr": lr, "seed": seed,
              "command": "sentinel train entity-head"}
    write_head(trunk, out, layer, record)
    return record


def recognizer_of(trunk: Path) -> EntityRecognizer:
    """The entity recognizer on the trunk in ``trunk``, in float32 on the CPU (as training reads it)."""
    settings = get_settings().model_copy(update={"trunk_model": str(trunk), "entity_model": "", "dtype": "float32",
                                                 "device": "cpu"})
    return EntityRecognizer.from_settings(settings)
