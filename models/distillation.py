"""Distillation: the teacher's soft sentiment labels, for the trunk's sentiment head to learn from.

``sentinel teacher-labels`` runs the teacher sentiment model (``sentinel train sentiment
--teacher``) over the labelled training texts (FPB train, twitter train) and over unlabelled
in-domain text: the news-headline replay files, FiQA-2018 headlines and posts, and the
SEntFiN headlines with more than one entity (the single-entity ones are the out-of-domain
test, ``datasets.sentfin_single_entity``). Texts of any evaluation split are left out.
``sentinel train trunk --soft-labels FILE`` then trains the sentiment head on the hard labels
and the teacher's probabilities (``distillation_loss``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from torch.nn import functional as F

from models import datasets


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
    fpb = datasets.fpb_splits(data)
    held_out = {t.casefold().strip() for t in [*fpb["val"].texts, *fpb["test"].texts,
                                               *datasets.twitter_split(data, "valid").texts,
                                               *datasets.sentfin_single_entity(data).texts]}
    labelled = {t.casefold().strip() for _, t in labelled_texts(data)}  # already rows of their own
    seen, out = held_out | labelled, []
    for source, text in found:
        key = text.casefold().strip()
        if key and key not in seen:
            seen.add(key)
            out.append((source, text.strip()))
    return out


def labelled_texts(data: Path) -> list[tuple[str, str]]:
    fpb = datasets.fpb_splits(data)
    return ([("financial_phrasebank (train part)", t) for t in fpb["train"].texts]
            + [("twitter_financial_news_sentiment/sent_train.csv", t)
               for t in datasets.twitter_split(data, "train").texts])


def write_teacher_labels(data: Path, teacher, out: Path, chunk: int = 256) -> dict:
    """The teacher's probabilities for every labelled and unlabelled text, as JSON lines; counts by source."""
    from infra.progress import progress

    items = labelled_texts(data) + unlabelled_texts(data)
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
                      mix: float = 0.5) -> torch.Tensor:
    """``mix`` of the KL divergence to the teacher's probabilities and the rest of cross-entropy on the
    hard labels (rows without one, ``ignore_index``, learn from the teacher alone)."""
    kd = F.kl_div(F.log_softmax(logits, dim=-1), soft, reduction="batchmean")
    has_label = labels != ignore_index
    if not has_label.any():
        return kd
    return mix * kd + (1 - mix) * F.cross_entropy(logits[has_label], labels[has_label])
