"""Distillation: the teacher's soft sentiment labels, for the trunk's sentiment head to learn from.

``sentinel teacher-labels`` runs the teacher sentiment model (``sentinel train sentiment
--teacher``) over the labelled training texts (FPB train, twitter train) and over unlabelled
in-domain text: the news-headline replay files, FiQA-2018 headlines and posts, and the
SEntFiN headlines with more than one entity (the single-entity ones are the out-of-domain
test, ``datasets.sentfin_single_entity``). Texts of any evaluation split are left out, the
entity-level SEntFiN validation and test headlines (``datasets.sentfin_entity_splits``) among them.
``sentinel train trunk --soft-labels FILE`` then trains the sentiment head on the hard labels
and the teacher's probabilities (``distillation_loss``).

FPB's train part is small (3,868 sentences), so ``--augment N`` also writes N variants of each
of its sentences (``WordReplacer``: some words swapped for a language model's guesses, as
TinyBERT's distillation does) for the teacher to label: the student learns the teacher's
reading of the neighbourhood of every training sentence, not only of the sentence.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import torch
from torch.nn import functional as F

from models.training import datasets


def _csv_column(path: Path, *names: str) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for name in names:
        if rows and name in rows[0]:
            return [r[name] for r in rows if r.get(name)]
    return []


def unlabelled_texts(data: Path) -> list[tuple[str, str]]:
    """(source, text) of the unlabelled in-domain texts, deduplicated; evaluation texts and the labelled training
    texts left out."""
    found: list[tuple[str, str]] = []
    for path in sorted(datasets._need(data / "news_headlines").glob("*.csv")):
        found += [(f"news_headlines/{path.name}", t) for t in _csv_column(path, "Headlines", "Headline")]
    for name in ("task1_headline_ABSA_train.json", "task1_post_ABSA_train.json"):
        rows = json.loads(datasets._need(data / "fiqa2018_task1" / name).read_text(encoding="utf-8"))
        found += [(f"fiqa2018_task1/{name}", r["sentence"]) for r in rows.values()]
    with datasets._need(data / "sentfin_v1" / "SEntFiN-v1.0.csv").open(encoding="utf-8", newline="") as f:
        found += [("sentfin_v1 (headlines with 2+ entities)", r["Title"]) for r in csv.DictReader(f)
                  if len(json.loads(r["Decisions"])) > 1]
    seen, out = _taken_texts(data), []
    for source, text in found:
        key = text.casefold().strip()
        if key and key not in seen:
            seen.add(key)
            out.append((source, text.strip()))
    return out


def _taken_texts(data: Path) -> set[str]:
    """Casefolded texts no new distillation row may repeat: every evaluation text, and the labelled
    training texts (already rows of their own)."""
    fpb = datasets.fpb_splits(data)
    held_out = [*fpb["val"].texts, *fpb["test"].texts, *datasets.twitter_split(data, "valid").texts,
                *datasets.sentfin_single_entity(data).texts]
    entity_level = datasets.sentfin_entity_splits(data)
    held_out += [h.title for h in [*entity_level["val"], *entity_level["test"]]]
    return {t.casefold().strip() for t in [*held_out, *(t for _, t in labelled_texts(data))]}


def labelled_texts(data: Path) -> list[tuple[str, str]]:
    fpb = datasets.fpb_splits(data)
    return ([("financial_phrasebank (train part)", t) for t in fpb["train"].texts]
            + [("twitter_financial_news_sentiment/sent_train.csv", t)
               for t in datasets.twitter_split(data, "train").texts])


AUGMENTED = "augmented financial_phrasebank train part (words replaced by the reply model's guesses)"


class WordReplacer:
    """Variants of a sentence with about ``rate`` of its words replaced by a causal language model's guesses.

    One forward pass per sentence gives, at every word, the model's next-token candidates from the words
    before it; a replaced word becomes one of the ``top_k`` whole-word candidates, drawn with a seeded
    generator. The model is the reply generator's (SmolLM2-135M by default, ``models/generator.py``).
    Numbers, punctuation and the first word stay as they are.
    """

    def __init__(self, tokenizer, model, rate: float = 0.15, top_k: int = 5, seed: int = 13):
        self.tokenizer, self.model, self.rate, self.top_k = tokenizer, model.eval(), rate, top_k
        self.rng = random.Random(seed)
        size = model.get_output_embeddings().weight.shape[0]
        pieces = [tokenizer.convert_ids_to_tokens(i) if i < len(tokenizer) else None for i in range(size)]
        # the tokens that are a whole word after a space (byte-level BPE marks the space with "Ġ")
        self.word_start = torch.tensor([bool(p) and p.startswith("Ġ") and p[1:].isalpha() for p in pieces])
        self.spaced = [bool(p) and p.startswith("Ġ") for p in pieces]
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"  # a causal model's scores before the padding stay as they are

    @classmethod
    def from_settings(cls, settings=None, **kwargs) -> "WordReplacer":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from infra.settings import get_settings
        from models.generator import cached_folder

        folder = cached_folder(settings or get_settings())
        return cls(AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder), **kwargs)

    @torch.inference_mode()
    def variants(self, texts: list[str], n: int) -> list[list[str]]:
        """Up to ``n`` variants of each text (one batched forward pass for all of them)."""
        enc = self.tokenizer(list(texts), return_offsets_mapping=True, return_tensors="pt", truncation=True,
                             max_length=128, padding=True)
        logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        return [self._variants(text, ids[: int(mask.sum())].tolist(), offsets.tolist(), scores, n)
                for text, ids, mask, offsets, scores in zip(texts, enc["input_ids"], enc["attention_mask"],
                                                            enc["offset_mapping"], logits)]

    def _variants(self, text: str, ids: list[int], offsets: list, logits: torch.Tensor, n: int) -> list[str]:
        starts = [j for j in range(1, len(ids)) if self.word_start[ids[j]]]
        if not starts:
            return []
        # each word's candidates: the top whole words predicted from the words before it
        guesses = logits[[j - 1 for j in starts]].masked_fill(~self.word_start, float("-inf"))
        guesses = dict(zip(starts, guesses.topk(self.top_k + 1, dim=-1).indices.tolist()))
        out = []
        for _ in range(n):
            pieces, last = [], 0
            for j in (j for j in starts if self.rng.random() < self.rate):
                end = j + 1
                while end < len(ids) and not self.spaced[ids[end]]:
                    end += 1  # the word goes on until the next token after a space
                word = self.tokenizer.decode([self.rng.choice([g for g in guesses[j] if g != ids[j]][: self.top_k])])
                pieces.append(text[last : offsets[j][0]].rstrip() + " " + word.strip())
                last = offsets[end - 1][1]
            variant = "".join(pieces) + text[last:]
            if variant != text:
                out.append(variant)
        return out


def augmented_texts(data: Path, replacer: WordReplacer, per_text: int, batch: int = 32) -> list[tuple[str, str]]:
    """``per_text`` variants of each FPB train sentence, deduplicated, with no evaluation or training text."""
    from infra.progress import progress

    fpb = datasets.fpb_splits(data)
    seen, out = _taken_texts(data), []
    with progress() as bar:
        task = bar.add_task("augmenting FPB train", total=len(fpb["train"].texts), info="")
        texts = list(fpb["train"].texts)
        for start in range(0, len(texts), batch):
            part = texts[start : start + batch]
            for variant in (v for found in replacer.variants(part, per_text) for v in found):
                key = variant.casefold().strip()
                if key not in seen:
                    seen.add(key)
                    out.append((AUGMENTED, variant.strip()))
            bar.update(task, advance=len(part))
    return out


def write_teacher_labels(data: Path, teacher, out: Path, chunk: int = 256, augmented: list | None = None) -> dict:
    """The teacher's probabilities for every labelled and unlabelled text (and ``augmented``, (source, text)
    pairs), as JSON lines; counts by source."""
    from infra.progress import progress

    items = labelled_texts(data) + unlabelled_texts(data) + list(augmented or [])
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    counts: dict[str, int] = {}
    with partial.open("w", encoding="utf-8") as f, progress() as bar:
        task = bar.add_task("teacher labels", total=len(items), info="")
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            for (source, text), result in zip(part, teacher.predict([t for _, t in part])):
                probs = [result.scores[label] for label in ("negative", "neutral", "positive")]
                f.write(json.dumps({"source": source, "text": text, "probs": probs}) + "\n")
                counts[source] = counts.get(source, 0) + 1
            bar.update(task, advance=len(part))
    partial.replace(out)
    return counts


def read_teacher_labels(path: Path) -> tuple[dict[str, list[float]], list[str]]:
    """(probabilities by text, the texts that are not labelled training rows)."""
    by_text, unlabelled = {}, []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                by_text[row["text"]] = [float(p) for p in row["probs"]]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path} line {n} is not a teacher label (text, probs); "
                                 "rewrite the file with `sentinel teacher-labels`") from None
            if not row["source"].startswith(("financial_phrasebank", "twitter_financial_news_sentiment")):
                unlabelled.append(row["text"])
    return by_text, unlabelled


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor, ignore_index: int,
                      mix: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """``mix`` of the KL divergence to the teacher's probabilities and the rest of cross-entropy on the
    hard labels (rows without one, ``ignore_index``, learn from the teacher alone).

    ``temperature`` T > 1 softens both sides (Hinton et al.): the teacher's stored probabilities p become
    p^(1/T), renormalised, which is its softmax at T; the KL term is scaled by T^2 so its gradients keep
    their size against the cross-entropy."""
    if temperature != 1.0:
        soft = soft.pow(1.0 / temperature)
        soft = soft / soft.sum(-1, keepdim=True)
    kd = F.kl_div(F.log_softmax(logits / temperature, dim=-1), soft, reduction="batchmean") * temperature ** 2
    has_label = labels != ignore_index
    if not has_label.any():
        return kd
    return mix * kd + (1 - mix) * F.cross_entropy(logits[has_label], labels[has_label])
