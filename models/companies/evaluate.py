"""Linking measured on labelled mentions: precision and the wrong-link rate per fuzzy threshold.

``models/written/company_mentions.jsonl``: one mention a line, ``{"text", "mention", "label", "company", "kind"}``
(``company`` is the right company id of the default universe, or null where no company of it is meant: a
namesake outside it, a near miss, an everyday word). Written by hand for this measure, kept out of training.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from models.companies import default_universe
from models.companies.linking import Universe

MENTIONS_FILE = Path(__file__).resolve().parents[1] / "written" / "company_mentions.jsonl"


def read_mentions(path: Path = MENTIONS_FILE) -> list[dict]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if not isinstance(obj, dict) or obj.get("mention") not in obj.get("text", ""):
            raise ValueError(f"line {n}: the mention is not in the text")
        out.append(obj)
    return out


def mention_start(m: dict) -> int:
    """Where the mention stands in its text: ``start`` when given, else its first whole-word occurrence."""
    if isinstance(m.get("start"), int):
        return m["start"]
    found = re.search(rf"(?<![\w$]){re.escape(m['mention'])}(?!\w)", m["text"]) or re.search(
        re.escape(m["mention"]), m["text"])
    return found.start() if found else 0


def score(mentions: Sequence[dict], predicted: Sequence[str | None]) -> dict:
    """Precision (right links of all links), recall (right links of the mentions with a company), the
    wrong-link rate (wrong links of all mentions) and accuracy (right links and right abstentions)."""
    linked = [(m, p) for m, p in zip(mentions, predicted) if p is not None]
    right = sum(1 for m, p in linked if p == m.get("company"))
    wrong = len(linked) - right
    with_company = sum(1 for m in mentions if m.get("company"))
    abstained_right = sum(1 for m, p in zip(mentions, predicted) if p is None and not m.get("company"))
    n = len(mentions)
    return {"mentions": n, "linked": len(linked), "right": right, "wrong": wrong,
            "precision": round(right / len(linked), 4) if linked else 1.0,
            "recall": round(right / with_company, 4) if with_company else 1.0,
            "wrong_rate": round(wrong / n, 4) if n else 0.0,
            "accuracy": round((right + abstained_right) / n, 4) if n else 1.0}


def evaluate(mentions: Sequence[dict], thresholds: Sequence[float], universe: Universe | None = None) -> dict:
    """Per threshold: the scores and the wrong links (text, mention, linked id, right id)."""
    universe = universe or Universe(default_universe())
    out = {}
    for threshold in thresholds:
        predicted = []
        for m in mentions:
            link = universe.link(m["mention"], m.get("label", "ORG"), m["text"], mention_start(m), threshold=threshold)
            predicted.append(link.company.id if link else None)
        wrong = [(m["mention"], p, m.get("company")) for m, p in zip(mentions, predicted)
                 if p is not None and p != m.get("company")]
        out[threshold] = {**score(mentions, predicted), "wrong_links": wrong}
    return out


def report(results: dict) -> str:
    lines = ["threshold  linked  right  wrong  precision  recall  wrong-rate  accuracy"]
    for threshold, r in results.items():
        shown = "no fuzzy" if threshold > 100 else f"{threshold:g}"
        lines.append(f"{shown:>9}  {r['linked']:>6}  {r['right']:>5}  {r['wrong']:>5}  {r['precision']:>9.3f}  "
                     f"{r['recall']:>6.3f}  {r['wrong_rate']:>10.3f}  {r['accuracy']:>8.3f}")
    lines.append(f"({next(iter(results.values()))['mentions'] if results else 0} labelled mentions)")
    for threshold, r in results.items():
        for mention, linked, right in r["wrong_links"]:
            lines.append(f"wrong at {threshold:g}: {mention!r} -> {linked} (right: {right})")
    return "\n".join(lines)
