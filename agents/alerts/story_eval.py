"""Story grouping measured: a labelled pair set (the target) and a generated copy set (scale).

    sentinel eval-stories --data ../shared/data [--pairs models/written/story_pairs.jsonl] [--seed 16] [--bases 1500]

**The pair set** (``models/written/story_pairs.jsonl``, how it was made: ``models/written/README.md``):
headline pairs labelled the same story (reprints, wire prefixes and suffixes, paraphrases) or
different stories (hard negatives: opposite verbs, other numbers, periods, names, swapped roles,
negation), split once into a tuning part and a held-out test part by base headline. Each pair goes
through a fresh ``StoryIndex`` (the first headline founds a story; grouped: the second joins it), with
the headlines' embeddings as the news agent reads them (``SENTINEL_STORY_EMBEDDING``: the base encoder's
own, or the trunk's ``embedding`` head; the other source is measured beside it the same way). Reported
per part: pairwise precision and recall over the same-story pairs, the share of hard negatives merged,
and per kind. The cosine threshold is chosen without the test part: among ``COSINES`` whose tuning
precision is at least ``MIN_PRECISION``, hard-negative merge rate at most ``MAX_MERGED``, and whose
precision on the generated set (below) is at least the rule before's, the one with the most tuning
recall (ties: the highest); the test part is then read at it once. Beside it: the Jaccard rule
alone (no embedding, as a trunk without an embedding head runs) and the rule before (exact Jaccard
>= 0.6, no checks).

**The generated set** (built, never stored): base headlines read from ``news_headlines/`` (Reuters,
CNBC, Guardian and Nasdaq/FNSPID files; licences in the data folder's README) and
deduplicated on their normalised text; each is one story. With a fixed seed, half of the
bases get 1-4 copies made the way wires and aggregators make them (labelled the same story):
a wire prefix, an outlet suffix, other casing, a ticker tag, punctuation, and small edits (a
word dropped, an attribution added, a verb in another tense or a synonym). Hard negatives
(labelled other stories): one base in ten gets a copy whose event differs (antonym swapped,
number changed: "raises" → "cuts", 12% → 31%), and the Nasdaq files hold many headlines about
the same company (Agilent, Alcoa, Apple) and different events. Every item goes through one
``StoryIndex`` in a shuffled order, all within one horizon: pairwise precision and recall over
all items, recall per kind of copy, the share of hard negatives merged into their base.

Writes ``docs/results/stories.json`` and the stories section of ``docs/MODELS.md`` (between its markers).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.alerts.stories import StoryIndex, jaccard, normalize
from infra.settings import PROJECT_ROOT, Settings

PAIRS = PROJECT_ROOT / "models" / "written" / "story_pairs.jsonl"
COSINES = [0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.95]
MIN_PRECISION, MAX_MERGED = 0.98, 0.05
SOURCES = {"base": "the base encoder's own sentence embedding", "trunk": "the trunk's embedding head"}
SHORT = {"base": "base embedding", "trunk": "trunk embedding head"}

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

def score(items: list[dict], threshold: float, horizon_s: float, cosine: float, embeddings: dict) -> dict:
    """The generated set through one index (module docstring)."""
    index = StoryIndex(threshold=threshold, horizon_s=horizon_s, cosine=cosine)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    predicted = {}
    for k, item in enumerate(items):
        predicted[item["id"]] = index.assign(item["id"], item["text"], t0 + timedelta(seconds=k),
                                             embeddings.get(item["text"])).story_id
    base_story = {i["story"]: i["id"] for i in items if i["kind"] == "base"}
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        if item["kind"] in ("base", "hard_negative"):
            continue
        per_kind[item["kind"]][0] += predicted[item["id"]] == predicted[base_story[item["story"]]]
        per_kind[item["kind"]][1] += 1
    return {"threshold": threshold, "cosine": cosine, **_score_predicted(items, predicted),
            "copies_joined": {k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items())}}


def _score_predicted(items: list[dict], predicted: dict) -> dict:
    """Pairwise precision and recall of a grouping of the generated set, and its hard negatives merged."""
    truth, pred, both = defaultdict(list), defaultdict(list), defaultdict(list)
    for item in items:
        truth[item["story"]].append(item["id"])
        pred[predicted[item["id"]]].append(item["id"])
        both[(item["story"], predicted[item["id"]])].append(item["id"])
    tp, p_pairs, t_pairs = pairs(both), pairs(pred), pairs(truth)
    precision, recall = (tp / p_pairs if p_pairs else 1.0), (tp / t_pairs if t_pairs else 1.0)
    negatives = [i for i in items if i["kind"] == "hard_negative"]
    merged = sum(predicted[i["id"]] == predicted[i["base"]] for i in negatives)
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "true_pairs": t_pairs, "predicted_pairs": p_pairs,
            "hard_negatives_merged": round(merged / len(negatives), 4) if negatives else 0.0}


def plain_shingles(headline: str) -> frozenset[str]:
    """The rule before's shingles: the normalised words as written and their pairs (no ``event_words``)."""
    words = normalize(headline).split()
    return frozenset(words) | frozenset(f"{a} {b}" for a, b in zip(words, words[1:]))


def generated_before(items: list[dict], threshold: float) -> dict:
    """The rule before: the generated set grouped by exact Jaccard alone, in arrival order (the most similar
    earlier story at or above ``threshold``, else a story of its own)."""
    founders: list[tuple[str, frozenset]] = []
    predicted = {}
    for item in items:
        sh = plain_shingles(item["text"])
        best = max(((jaccard(sh, f_sh), sid) for sid, f_sh in founders if sh and jaccard(sh, f_sh) >= threshold),
                   default=None)
        if best is None:
            founders.append((item["id"], sh))
            predicted[item["id"]] = item["id"]
        else:
            predicted[item["id"]] = best[1]
    return predicted


def read_pairs(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        if r.get("label") not in ("same", "different") or r.get("part") not in ("tune", "test"):
            raise ValueError(f"{path.name}: pair {r.get('id')} needs label same|different and part tune|test")
    return rows


def grouped_pairs(rows: list[dict], threshold: float, cosine: float, horizon_s: float, embeddings: dict) -> list[bool]:
    """Per pair: whether its second headline joins the story its first founded (a fresh index per pair)."""
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    out = []
    for r in rows:
        index = StoryIndex(threshold=threshold, horizon_s=horizon_s, cosine=cosine)
        first = index.assign("a", r["a"], t0, embeddings.get(r["a"]))
        second = index.assign("b", r["b"], t0 + timedelta(minutes=5), embeddings.get(r["b"]))
        out.append(second.story_id == first.story_id)
    return out


def pair_scores(rows: list[dict], grouped: list[bool]) -> dict:
    same = [g for r, g in zip(rows, grouped) if r["label"] == "same"]
    different = [g for r, g in zip(rows, grouped) if r["label"] == "different"]
    tp, fp = sum(same), sum(different)
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r, g in zip(rows, grouped):
        kinds[r["kind"]][0] += g
        kinds[r["kind"]][1] += 1
    return {"pairs": len(rows), "same_pairs": len(same), "hard_negatives": len(different),
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / len(same), 4) if same else 1.0,
            "hard_negatives_merged": round(fp / len(different), 4) if different else 0.0,
            "grouped_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(kinds.items())},
            "missed": [r["id"] for r, g in zip(rows, grouped) if r["label"] == "same" and not g],
            "merged": [r["id"] for r, g in zip(rows, grouped) if r["label"] == "different" and g]}


def batch_scores(rows: list[dict], grouped: list[bool]) -> dict[str, dict]:
    """``pair_scores`` of each batch of a part (``"batch"``; absent: 1), empty for a part of one batch: a later
    batch was written after the word lists it measures (models/written/README.md)."""
    batches: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for r, g in zip(rows, grouped):
        batch_rows, batch_grouped = batches[str(r.get("batch", 1))]
        batch_rows.append(r)
        batch_grouped.append(g)
    return {b: pair_scores(*batch) for b, batch in sorted(batches.items())} if len(batches) > 1 else {}


def choose_cosine(sweep: list[dict], floor: float) -> float:
    """Among the cosines whose tuning scores meet the bars and whose generated-set precision is at least
    ``floor`` (the rule before's: real headlines of other stories are not grouped more often than before), the
    one with the most tuning recall (ties: the highest cosine, the most cautious); the highest swept if none."""
    passing = [r for r in sweep if r["precision"] >= MIN_PRECISION and r["hard_negatives_merged"] <= MAX_MERGED
               and r["generated_precision"] >= floor]
    if not passing:
        return sweep[-1]["cosine"]
    return max(passing, key=lambda r: (r["recall"], r["cosine"]))["cosine"]


def headline_embeddings(texts: list[str], source: str = "base") -> dict:
    """Each headline's unit embedding (a headline alone: the whole text), from the base encoder (``base``) or
    the trunk's embedding head (``trunk``), as ``SENTINEL_STORY_EMBEDDING`` says."""
    from models.trunk import EMBEDDING, Trunk, load_trunk

    if source == "base":
        from models.sentences import SentenceEncoder

        texts = sorted(set(texts))
        return dict(zip(texts, SentenceEncoder.from_settings().embed(texts)))
    loaded = load_trunk()
    if EMBEDDING not in loaded.meta.get("heads", {}):
        raise ValueError(f"the trunk at {loaded.source} has no embedding head; stories need one to be measured")
    trunk = Trunk(loaded, {})
    texts = sorted(set(texts))
    out = {}
    for start in range(0, len(texts), 512):
        chunk = texts[start:start + 512]
        out.update(zip(chunk, trunk.read(chunk, [EMBEDDING])[EMBEDDING]))
    return out


def _row(label: str, s: dict) -> str:
    return (f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['hard_negatives_merged']:.1%} | "
            f"{s['same_pairs']} / {s['hard_negatives']} |")


def _part_rows(label: str, m: dict, bold: bool = False) -> list[str]:
    """The test part, its batches, the tuning part and its batches, at ``m``'s cosine."""
    test = "**test**" if bold else "test"
    return [_row(f"{label} (cosine {m['cosine']}), {test}", m["test"]),
            *(_row(f"{label} (cosine {m['cosine']}), test, batch {b}", s) for b, s in m["by_batch"]["test"].items()),
            _row(f"{label} (cosine {m['cosine']}), tuning", m["tune"]),
            *(_row(f"{label} (cosine {m['cosine']}), tuning, batch {b}", s) for b, s in m["by_batch"]["tune"].items())]


def markdown(report: dict) -> str:
    p, served = report["pairs"], report.get("embedding", "trunk")
    label = f"{SHORT[served]} + checks"
    others = report.get("other_embeddings", {})
    lines = [f"Pair set: `{p['file']}`, {p['tune']['pairs']} tuning pairs and {p['test']['pairs']} held-out test "
             f"pairs. Served embedding: {SOURCES[served]} (`SENTINEL_STORY_EMBEDDING={served}`). Cosine chosen "
             f"without the test part: **{p['cosine']}** (the most tuning recall, then the "
             f"highest cosine, among those with tuning precision >= {MIN_PRECISION}, hard negatives merged <= "
             f"{MAX_MERGED:.0%}, and precision on the generated set at least the rule before's, "
             f"{report['generated']['before']['precision']:.3f}; each source's cosine chosen so). "
             f"Command: `{report['command']}`.", "",
             "| method, part | pairwise precision | pairwise recall | hard negatives merged | same / different pairs |",
             "|---|---|---|---|---|",
             *_part_rows(label, p, bold=True),
             *(row for source, m in others.items() for row in _part_rows(f"{SHORT[source]} + checks", m)),
             _row("Jaccard + checks (no embedding), test", p["jaccard_checks"]["test"]),
             _row("before: exact Jaccard >= 0.6, no checks, test", p["before"]["test"]), "",
             "Grouped by kind on the test part (same-story kinds: grouped is right; the others: grouped is wrong): "
             + ", ".join(f"{k} {v}" for k, v in p["test"]["grouped_by_kind"].items()) + ".", ""]
    for source, m in (("served", p), *others.items()):
        lines += [f"Tuning sweep, {SHORT.get(source, SHORT[served])} (cosine: precision / recall / hard negatives "
                  "merged on the tuning pairs; precision on the generated set): " + "; ".join(
                      f"{r['cosine']}: {r['precision']:.3f} / {r['recall']:.3f} / {r['hard_negatives_merged']:.1%}; "
                      f"{r['generated_precision']:.3f}" for r in m["sweep"]) + ".", ""]
    g = report["generated"]
    lines += [f"Generated set: {g['items']} headlines in {g['stories']} stories ({g['bases']} bases from "
              f"`news_headlines/`, {g['copies']} generated copies, {g['hard_negatives']} generated hard negatives), "
              f"seed {g['seed']}, at each source's chosen cosine and Jaccard {g['threshold']}:", "",
              "| method | pairwise precision | pairwise recall | F1 | hard negatives merged |", "|---|---|---|---|---|"]
    rows = [(f"{label} (cosine {p['cosine']})", g["embedding_checks"]),
            *((f"{SHORT[source]} + checks (cosine {m['cosine']})", m["generated"]) for source, m in others.items()),
            ("before: Jaccard, no checks", g["before"])]
    for name, r in rows:
        lines.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
                     f"{r['hard_negatives_merged']:.1%} |")
    lines += ["", f"Copies joined to their base ({label}), by kind: " + ", ".join(
        f"{k} {v:.1%}" for k, v in g["embedding_checks"]["copies_joined"].items()) + "."]
    return "\n".join(lines)


def measure_embedding(parts: dict, items: list[dict], embeddings: dict, jac: float, horizon: float,
                      floor: float) -> dict:
    """One embedding source: the cosine sweep on the tuning part and the generated set, the chosen cosine, the
    parts' scores at it (and by batch) and the generated set's."""
    sweep = [{"cosine": c, **pair_scores(parts["tune"], grouped_pairs(parts["tune"], jac, c, horizon, embeddings)),
              "generated_precision": score(items, jac, horizon, c, embeddings)["precision"]} for c in COSINES]
    cosine = choose_cosine(sweep, floor)
    grouped = {name: grouped_pairs(part, jac, cosine, horizon, embeddings) for name, part in parts.items()}
    scored = {name: pair_scores(part, grouped[name]) for name, part in parts.items()}
    return {"cosine": cosine, "sweep": sweep, **scored,
            "by_batch": {name: batch_scores(part, grouped[name]) for name, part in parts.items()},
            "generated": score(items, jac, horizon, cosine, embeddings)}


def evaluate_stories(data: Path, seed: int = 16, bases: int = 1500,
                     out: Path = PROJECT_ROOT / "docs" / "results" / "stories.json",
                     models_doc: Path = PROJECT_ROOT / "docs" / "MODELS.md", pairs_file: Path = PAIRS,
                     progress=print) -> str:
    """Score the pair set (cosine chosen without its test part) and the generated set, with the served embedding
    source and the other one; write ``out`` and the section in ``models_doc``; return the section."""
    settings = Settings()
    rows = read_pairs(pairs_file)
    items = build_set(data, seed, bases)
    texts = [r[k] for r in rows for k in "ab"] + [i["text"] for i in items]
    parts = {name: [r for r in rows if r["part"] == name] for name in ("tune", "test")}
    horizon, jac = settings.story_horizon, settings.story_threshold
    before_generated = _score_predicted(items, generated_before(items, 0.6))
    measured = {}
    for source in (settings.story_embedding, *(s for s in SOURCES if s != settings.story_embedding)):
        progress(f"embedding {len(set(texts))} headlines ({SOURCES[source]}); sweeping the cosine threshold on the "
                 "tuning part and the generated set ...")
        measured[source] = measure_embedding(parts, items, headline_embeddings(texts, source), jac, horizon,
                                             before_generated["precision"])
    served = measured.pop(settings.story_embedding)
    cosine = served["cosine"]
    jaccard_checks = {name: pair_scores(part, grouped_pairs(part, jac, cosine, horizon, {}))
                      for name, part in parts.items()}
    before = {name: pair_scores(part, [jaccard(plain_shingles(r["a"]), plain_shingles(r["b"])) >= 0.6
                                       for r in part]) for name, part in parts.items()}
    kinds = Counter(i["kind"] for i in items)
    generated = {"seed": seed, "items": len(items), "stories": len({i["story"] for i in items}),
                 "bases": kinds["base"], "hard_negatives": kinds["hard_negative"],
                 "copies": len(items) - kinds["base"] - kinds["hard_negative"], "threshold": jac,
                 "embedding_checks": served.pop("generated"), "before": before_generated}
    resolved = pairs_file.resolve()
    shown = resolved.relative_to(PROJECT_ROOT) if resolved.is_relative_to(PROJECT_ROOT) else pairs_file.name
    report = {"command": f"sentinel eval-stories --data ../shared/data --seed {seed} --bases {bases}",
              "method": f"cosine of the headlines' embeddings ({SOURCES[settings.story_embedding]}) or Jaccard of "
                        "shingles, and no conflict between the headlines' events (agents/alerts/story_events.py)",
              "embedding": settings.story_embedding,
              "pairs": {"file": str(shown), "jaccard": jac, **served, "jaccard_checks": jaccard_checks,
                        "before": before},
              "generated": generated,
              "other_embeddings": measured}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    doc = models_doc.read_text() if models_doc.exists() else ""
    if MARK_BEGIN in doc and MARK_END in doc:
        head, rest = doc.split(MARK_BEGIN, 1)
        doc = head + MARK_BEGIN + "\n" + table + "\n" + MARK_END + rest.split(MARK_END, 1)[1]
        models_doc.write_text(doc)
    return table
