"""How much the labelled headlines should weigh when the trunk's entity head is trained again
(``models/training/entity_head.py``): 4-fold cross-validation on the labelled set's training part only.

For each weight, each fold's head is trained on CoNLL-2003 train and the other three folds, and reads its own fold;
the four folds' readings are scored together (all 200 training headlines, each read by a head that did not train on
it), for the head alone and as served (index names marked and the company names the universe knows added, ``correct_mentions``). CoNLL-2003
valid F1 is the head trained on the whole training part. The held-out test part is not read.

Run (a few minutes on 2 CPU cores, most of it reading CoNLL with the trunk):
``python -m bench.entity_head`` (writes ``docs/bench/entity_head.json``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

from infra.progress import console
from infra.settings import get_settings
from models.companies import default_universe
from models.companies.linking import Universe, correct_mentions
from models.encoder import encode_texts
from models.entities import _iob
from models.training import datasets
from models.training.entity_head import HeadRows, fit_head, recognizer_of
from models.training.evaluation import org_span_report
from models.training.headline_orgs import load_headline_orgs

WEIGHTS = (0.0, 1.0, 3.0, 10.0, 30.0)
FOLDS = 4
FOLD_SEED = 7
OUT = Path("docs/bench/entity_head.json")


def _figures(report: dict) -> dict:
    return {k: report[k] for k in ("gold", "predicted", "strict", "overlap")}


def main() -> None:
    settings = get_settings()
    data = Path(settings.data_dir)
    rows = HeadRows(recognizer_of(Path(settings.trunk_model)))
    recognizer = rows.recognizer
    universe = Universe(default_universe())
    console.print("reading CoNLL-2003 train and valid, and the training headlines, with the frozen trunk")
    conll = rows.conll(data, "train")
    valid = datasets.conll_split(data, "valid")
    valid_states, _ = rows.conll(data, "valid")
    part = load_headline_orgs(split="train")
    texts = [r["text"] for r in part]
    features = encode_texts(recognizer.loaded.tokenizer, texts, 128)
    states, labels = rows.labelled_headlines(part)
    full_states = rows.trunk.run_heads(features, ["entity_sentiment"])["entity_sentiment"]

    def read(layer, picked: list[int]) -> tuple[list, list]:
        with torch.inference_mode():
            logits = [layer(full_states[k]) for k in picked]
        head = recognizer.decode([texts[k] for k in picked], [features[k] for k in picked], logits)
        served = [list(found) for found in head]
        for k, found in zip(picked, served):
            correct_mentions(found, texts[k], universe)
        return head, served

    def conll_valid_f1(layer) -> float:
        with torch.inference_mode():
            predicted = []
            for words, st in zip(valid.words, valid_states):
                tags = ["O"] * len(words)
                for w, j in enumerate(layer(st).argmax(-1).tolist()):  # states are one row per word, in order
                    tags[w] = _iob(recognizer.labels[j])
                predicted.append(tags)
        return round(f1_score(valid.tags, predicted, mode="strict", scheme=IOB2), 4)

    order = list(range(len(part)))
    random.Random(FOLD_SEED).shuffle(order)
    folds = [order[i::FOLDS] for i in range(FOLDS)]
    everything = list(range(len(part)))
    head, served = read(rows.head, everything)
    report = {"headlines": len(part), "folds": FOLDS, "fold_seed": FOLD_SEED, "served_before": {
        "head_alone": _figures(org_span_report(part, head)), "as_served": _figures(org_span_report(part, served)),
        "conll_valid_f1": conll_valid_f1(rows.head)}, "weights": {}}
    for weight in WEIGHTS:
        gold, heads, serveds = [], [], []
        for fold in folds:
            held = set(fold)
            train = [k for k in everything if k not in held]
            layer = fit_head(rows.head, [(*conll, 1.0), ([states[k] for k in train], [labels[k] for k in train],
                                                          weight)], epochs=4, lr=1e-3, seed=13)
            head, served = read(layer, fold)
            gold += [part[k] for k in fold]
            heads += head
            serveds += served
        whole = fit_head(rows.head, [(*conll, 1.0), (states, labels, weight)], epochs=4, lr=1e-3, seed=13)
        report["weights"][str(weight)] = {"head_alone": _figures(org_span_report(gold, heads)),
                                          "as_served": _figures(org_span_report(gold, serveds)),
                                          "conll_valid_f1": conll_valid_f1(whole)}
        s = report["weights"][str(weight)]["as_served"]["strict"]
        console.print(f"weight {weight:5}: as served, strict P/R {s['precision']:.3f}/{s['recall']:.3f}; "
                      f"CoNLL valid F1 {report['weights'][str(weight)]['conll_valid_f1']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
