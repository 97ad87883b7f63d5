"""A labelled near-duplicate set and the precision and recall of story grouping on it.

    sentinel eval-stories --data ../shared/data [--seed 16] [--bases 1500]

The set is built, never stored: base headlines are read from ``news_headlines/`` (Reuters,
CNBC, Guardian and Nasdaq/FNSPID files; licences in the data folder's README) and
deduplicated on their normalised text; each is one story. With a fixed seed, half of the
bases get 1-4 copies made the way wires and aggregators make them (labelled the same story):
a wire prefix, an outlet suffix, other casing, a ticker tag, punctuation, and small edits (a
word dropped, an attribution added, a verb in another tense or a synonym). Hard negatives
(labelled other stories): one base in ten gets a copy whose event differs (antonym swapped,
number changed: "raises" → "cuts", 12% → 31%), and the Nasdaq files hold many headlines about
the same company (Agilent, Alcoa, Apple) and different events.

Every item goes through ``StoryIndex.assign`` in a shuffled order, all within one horizon.
Reported: pairwise precision and recall (pairs of items grouped together vs labelled
together), recall per kind of copy, the share of hard negatives merged into their base, at
the configured threshold and a sweep of thresholds. Writes ``docs/stories.json`` and the
stories section of ``docs/MODELS.md`` (between its markers).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.alerts.stories import StoryIndex, normalize
from infra.settings import PROJECT_ROOT, Settings

FILES = {"reuters_headlines.csv": "Headlines", "cnbc_headlines.csv": "Headlines", "guardian_headlines.csv": "Headlines",
         "fnspid_nasdaq_headlines_a.csv": "Headline", "fnspid_nasdaq_headlines_aa.csv": "Headline",
         "fnspid_nasdaq_headlines_aapl.csv": "Headline"}
PREFIXES = ["UPDATE 1-", "UPDATE 2-", "BRIEF-", "EXCLUSIVE-", "RPT-", "REFILE-", "CORRECTED-"]
SUFFIXES = [" - Reuters", " | Bloomberg", " - CNBC", " - MarketWatch", " — The Wall Street Journal"]
ATTRIBUTIONS = [", sources say", ", report says", " -analysts", ": filing"]
SYNONYMS = {"rises": "rose", "falls": "fell", "says": "said", "cuts": "cut", "raises": "raised", "jumps": "jumped",
            "to": "will", "plans": "planned", "shares": "stock", "profit": "earnings", "sales": "revenue"}
ANTONYMS = {"rises": "falls", "falls": "rises", "rise": "fall", "fall": "rise", "up": "down", "down": "up",
            "beats": "misses", "misses": "beats", "beat": "miss", "miss": "beat", "raises": "cuts", "cuts": "raises",
            "buy": "sell", "sell": "buy", "higher": "lower", "lower": "higher", "gains": "losses", "losses": "gains",
            "surges": "plunges", "plunges": "surges", "wins": "loses", "loses": "wins", "top": "bottom",
            "bullish": "bearish", "bearish": "bullish", "record": "weak", "strong": "weak", "weak": "strong"}
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
MARK_BEGIN, MARK_END = "<!-- stories:begin -->", "<!-- stories:end -->"


def read_bases(data: Path) -> list[tuple[str, str]]:
    """(file, headline) of every distinct base headline (distinct after normalisation), in file order."""
    seen: set[str] = set()
    out = []
    for name, column in FILES.items():
        with open(data / "news_headlines" / name, encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                h = (row.get(column) or "").strip()
                n = normalize(h)
                if len(n.split()) < 4 or n in seen:
                    continue
                seen.add(n)
                out.append((name, h))
    return out


def copy_of(h: str, kind: str, rng: random.Random) -> str | None:
    words = h.split()
    if kind == "prefix":
        return rng.choice(PREFIXES) + h
    if kind == "suffix":
        return h + rng.choice(SUFFIXES)
    if kind == "casing":
        return rng.choice([h.upper(), h.lower(), h.title()])
    if kind == "punctuation":
        return re.sub(r"[,:;'\"]", "", h).rstrip(".") + rng.choice([".", "!", ""])
    if kind == "ticker":
        return h + rng.choice([" (NYSE: XYZ)", " (NASDAQ: ABC)", " $XYZ"])
    if kind == "drop_word" and len(words) > 6:
        i = rng.randrange(1, len(words))
        return " ".join(words[:i] + words[i + 1:])
    if kind == "attribution":
        return h.rstrip(".") + rng.choice(ATTRIBUTIONS)
    if kind == "synonym":
        hits = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
        if hits:
            i = rng.choice(hits)
            return " ".join(words[:i] + [SYNONYMS[words[i].lower()]] + words[i + 1:])
    return None


def hard_negative(h: str, rng: random.Random) -> str | None:
    """The same company, another event: an antonym swapped in, or every number changed."""
    words = h.split()
    hits = [i for i, w in enumerate(words) if w.lower() in ANTONYMS]
    if hits:
        i = rng.choice(hits)
        return " ".join(words[:i] + [ANTONYMS[words[i].lower()]] + words[i + 1:])
    if re.search(r"\d", h):
        return re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(7, 60)), h)
    return None


COPY_KINDS = ["prefix", "suffix", "casing", "punctuation", "ticker", "drop_word", "attribution", "synonym"]


def build_set(data: Path, seed: int, n_bases: int) -> list[dict]:
    """Items: {"id", "text", "story" (the label), "kind"}."""
    rng = random.Random(seed)
    bases = read_bases(data)
    rng.shuffle(bases)
    items = []
    for b, (source, h) in enumerate(bases[:n_bases]):
        story = f"s{b}"
        items.append({"id": f"b{b}", "text": h, "story": story, "kind": "base", "file": source})
        if rng.random() < 0.5:
            for c, kind in enumerate(rng.sample(COPY_KINDS, rng.randint(1, 4))):
                text = copy_of(h, kind, rng)
                if text is not None and kind in ("drop_word", "synonym", "attribution") and rng.random() < 0.5:
                    text = copy_of(text, rng.choice(["prefix", "suffix", "casing"]), rng)  # edits stack up
                if text is not None:
                    items.append({"id": f"b{b}c{c}", "text": text, "story": story, "kind": kind, "file": source})
        if rng.random() < 0.1:
            text = hard_negative(h, rng)
            if text is not None and normalize(text) != normalize(h):
                items.append({"id": f"b{b}n", "text": text, "story": f"s{b}n", "kind": "hard_negative",
                              "file": source, "base": f"b{b}"})
    rng.shuffle(items)
    return items


def pairs(groups: dict) -> int:
    return sum(len(v) * (len(v) - 1) // 2 for v in groups.values())


def score(items: list[dict], threshold: float, horizon_s: float) -> dict:
    index = StoryIndex(threshold=threshold, horizon_s=horizon_s)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    predicted = {}
    for k, item in enumerate(items):
        predicted[item["id"]] = index.assign(item["id"], item["text"], t0 + timedelta(seconds=k)).story_id
    truth, pred, both = defaultdict(list), defaultdict(list), defaultdict(list)
    for item in items:
        truth[item["story"]].append(item["id"])
        pred[predicted[item["id"]]].append(item["id"])
        both[(item["story"], predicted[item["id"]])].append(item["id"])
    tp, p_pairs, t_pairs = pairs(both), pairs(pred), pairs(truth)
    precision = tp / p_pairs if p_pairs else 1.0
    recall = tp / t_pairs if t_pairs else 1.0
    base_story = {i["story"]: i["id"] for i in items if i["kind"] == "base"}
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        if item["kind"] in ("base",):
            continue
        if item["kind"] == "hard_negative":
            merged = predicted[item["id"]] == predicted[item["base"]]
            per_kind["hard_negative"][0] += merged
        else:
            per_kind[item["kind"]][0] += predicted[item["id"]] == predicted[base_story[item["story"]]]
        per_kind[item["kind"]][1] += 1
    return {"threshold": threshold, "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "true_pairs": t_pairs, "predicted_pairs": p_pairs,
            "copies_joined": {k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items()) if k != "hard_negative"},
            "hard_negatives_merged": round(per_kind["hard_negative"][0] / per_kind["hard_negative"][1], 4)
            if per_kind["hard_negative"][1] else None}


def markdown(report: dict) -> str:
    lines = [f"Set: {report['items']} headlines in {report['stories']} stories ({report['bases']} bases from "
             f"`news_headlines/`, {report['copies']} generated copies, {report['hard_negatives']} generated hard "
             f"negatives), seed {report['seed']}. Command: `{report['command']}`.", "",
             "| threshold | pairwise precision | pairwise recall | F1 | hard negatives merged |",
             "|---|---|---|---|---|"]
    for r in report["sweep"]:
        mark = " (default)" if r["threshold"] == report["threshold"] else ""
        lines.append(f"| {r['threshold']}{mark} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                     f"{r['hard_negatives_merged']:.1%} |")
    default = next(r for r in report["sweep"] if r["threshold"] == report["threshold"])
    lines += ["", "Copies joined to their base at the default threshold, by kind: " + ", ".join(
        f"{k} {v:.1%}" for k, v in default["copies_joined"].items()) + "."]
    return "\n".join(lines)


def evaluate_stories(data: Path, seed: int = 16, bases: int = 1500, out: Path = PROJECT_ROOT / "docs" / "stories.json",
                     models_doc: Path = PROJECT_ROOT / "docs" / "MODELS.md") -> str:
    """Build the labelled set, sweep the thresholds, write ``out`` and the table in ``models_doc``; the table."""
    settings = Settings()
    items = build_set(data, seed, bases)
    kinds = Counter(i["kind"] for i in items)
    report = {"command": f"sentinel eval-stories --data ../shared/data --seed {seed} --bases {bases}",
              "seed": seed, "items": len(items), "stories": len({i["story"] for i in items}),
              "bases": kinds["base"], "hard_negatives": kinds["hard_negative"],
              "copies": len(items) - kinds["base"] - kinds["hard_negative"],
              "threshold": settings.story_threshold, "method": "MinHash LSH (datasketch, 128 permutations) on word "
              "and word-pair shingles of normalised headlines, checked by exact Jaccard",
              "sweep": [score(items, t, settings.story_horizon) for t in THRESHOLDS]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    doc = models_doc.read_text() if models_doc.exists() else ""
    if MARK_BEGIN in doc and MARK_END in doc:
        head, rest = doc.split(MARK_BEGIN, 1)
        doc = head + MARK_BEGIN + "\n" + table + "\n" + MARK_END + rest.split(MARK_END, 1)[1]
        models_doc.write_text(doc)
    return table
