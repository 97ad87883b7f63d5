"""Cheap changes to the served entity head's ORG output, measured on the labelled real headlines (no training).

Variants, each on top of the served model's ORG and TICKER spans:
- ``misc_as_org``: MISC spans count as ORG too (the head reads many companies as MISC: Huawei, Disney, Zoom).
- ``gazetteer``: company names from ``pytickersymbols`` (legal suffixes cut, case-sensitive, whole words) added as
  ORG where no ORG-like span overlaps them, replacing the model's other spans that overlap them.
- both together.
- ``gazetteer+not_names``: the gazetteer, and ORG spans inside an index or show name ("S&P 500", "Mad Money",
  the two most common false positives of the training part) dropped.

Choices were made on the training part; the test part's figures are reported, not tuned on.
Run: ``python -m bench.headline_orgs``.
"""

from __future__ import annotations

import json
import re

from infra.progress import console
from models.entities import Entity, EntityRecognizer
from models.training.evaluation import ORG_LIKE, org_span_report
from models.training.headline_orgs import load_headline_orgs

_SUFFIX = re.compile(r"(,?\s+(Inc\.?|Incorporated|Corp\.?|Corporation|Company|Co\.?|plc|PLC|AG|SE|S\.A\.|SA|N\.V\.|NV"
                     r"|Ltd\.?|Limited|Holdings?|Group|Class [A-C]|& Co\.?|Aktiengesellschaft|ASA|AB))+$")


def gazetteer_names() -> list[str]:
    """Short company names from pytickersymbols' index constituents, longest first."""
    from pytickersymbols import PyTickerSymbols

    names = set()
    for stock in PyTickerSymbols().get_all_stocks():
        name = _SUFFIX.sub("", re.sub(r"^The\s+", "", stock["name"].strip())).strip(" ,")
        if len(name) >= 3:
            names.add(name)
    return sorted(names, key=len, reverse=True)


def with_gazetteer(text: str, entities: list[Entity], pattern: re.Pattern) -> list[Entity]:
    found = []
    for m in pattern.finditer(text):
        if not any(e.label in ORG_LIKE and e.start < m.end() and m.start() < e.end for e in entities):
            found.append(Entity(m.group(), "ORG", m.start(), m.end(), 1.0))
    kept = [e for e in entities if not any(e.start < f.end and f.start < e.end for f in found)]
    return sorted(kept + found, key=lambda e: e.start)


_NOT_ORG = re.compile(r"S&P 500|Mad Money")


def without_index_names(text: str, entities: list[Entity]) -> list[Entity]:
    spans = [m.span() for m in _NOT_ORG.finditer(text)]
    return [e for e in entities if not any(a <= e.start and e.end <= b for a, b in spans)]


def main() -> None:
    recognizer = EntityRecognizer.from_settings()
    names = gazetteer_names()
    pattern = re.compile(r"(?<![\w&])(?:" + "|".join(map(re.escape, names)) + r")(?![\w&])")
    console.print(f"gazetteer: {len(names)} names")
    report = {}
    for split in ("train", "test"):
        rows = load_headline_orgs(split=split)
        served = recognizer.predict([r["text"] for r in rows])
        misc = [[Entity(e.text, "ORG" if e.label == "MISC" else e.label, e.start, e.end, e.score) for e in row]
                for row in served]
        variants = {"served": served, "misc_as_org": misc,
                    "gazetteer": [with_gazetteer(r["text"], row, pattern) for r, row in zip(rows, served)],
                    "misc_as_org+gazetteer": [with_gazetteer(r["text"], row, pattern) for r, row in zip(rows, misc)]}
        variants["gazetteer+not_names"] = [without_index_names(r["text"], row)
                                           for r, row in zip(rows, variants["gazetteer"])]
        report[split] = {}
        for name, entities in variants.items():
            part = org_span_report(rows, entities)
            report[split][name] = {k: part[k] for k in ("n", "gold", "predicted", "strict", "overlap")}
            report[split][name]["top_false_positives"] = [f"{m['text']} ({m['count']})"
                                                          for m in part["top_false_positives"][:8]]
            console.print(f"{split:5} {name:22} strict P/R {part['strict']['precision']:.3f}/"
                          f"{part['strict']['recall']:.3f}  overlap P/R {part['overlap']['precision']:.3f}/"
                          f"{part['overlap']['recall']:.3f}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
