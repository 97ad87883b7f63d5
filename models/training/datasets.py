"""Readers and fixed splits for the data sets in ``shared/data`` (read by path, never copied).

Split rules (documented in docs/MODELS.md):
- Financial PhraseBank: ``Sentences_50Agree.txt``, split on the last ``@``; exact duplicates
  collapsed, sentences seen with two different labels dropped; then a stratified
  80/10/10 train/val/test split with ``SPLIT_SEED``.
- twitter-financial-news: ``sent_train.csv`` for training, ``sent_valid.csv`` for evaluation only.
- SEntFiN: the headlines with exactly one entity, labelled with that entity's sentiment (headline level,
  out of domain). Entity level (``sentfin_entity_splits``): every headline with each entity's span located
  in the title (case-insensitive; entities not found are skipped and counted), split by headline (repeated
  titles are one headline; all of a headline's entities in one part) 80/10/10 train/val/test with ``SPLIT_SEED``, stratified by the
  headline's labels (all negative / all neutral / all positive / mixed).
- CoNLL-2003: the standard train / valid / test files (IOB2).
- banking77: ``train.csv`` (10% stratified hold-out with ``SPLIT_SEED`` for model selection), ``test.csv``.
- Real headlines with a sentiment score per company (SemEval-2017 Task 5, FiQA-2018 Task 1): a score above
  ``SCORE_BAND`` is positive, below its negative is negative, else neutral (the band chosen before looking at any
  result, as the data's README suggests). SemEval-2017 is evaluation only (real headlines no model trains or is
  selected on); FiQA-2018 headlines may train (``--headline-repeat``).
- Written event headlines: ``models/written/event_headlines.jsonl`` is the selection set (never trained on);
  ``models/written/event_headlines_train.jsonl``, written apart from it (other companies, no close rewording),
  may train.
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from models import escalation

SPLIT_SEED = 20240607
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
TWITTER_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}


class DataMissing(FileNotFoundError):
    pass


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataMissing(f"{path} not found: pass --data pointing at the shared data folder (e.g. ../shared/data)")
    return path


@dataclass
class TextSplit:
    texts: list[str]
    labels: list[str]


def _read_fpb(path: Path) -> dict[str, str]:
    seen: dict[str, set[str]] = {}
    for line in _need(path).read_text(encoding="utf-8").splitlines():
        if "@" not in line:
            continue
        text, _, label = line.rpartition("@")
        text, label = text.strip(), label.strip()
        if text and label in SENTIMENT_LABELS:
            seen.setdefault(text, set()).add(label)
    return {t: next(iter(ls)) for t, ls in seen.items() if len(ls) == 1}


def fpb_splits(data: Path) -> dict[str, TextSplit]:
    """Fixed train/val/test of FPB 50Agree, plus ``test_allagree`` (test sentences also in AllAgree)."""
    folder = data / "financial_phrasebank"
    rows = _read_fpb(folder / "Sentences_50Agree.txt")
    texts = sorted(rows)
    labels = [rows[t] for t in texts]
    tr_x, rest_x, tr_y, rest_y = train_test_split(texts, labels, test_size=0.2, stratify=labels,
                                                  random_state=SPLIT_SEED)
    va_x, te_x, va_y, te_y = train_test_split(rest_x, rest_y, test_size=0.5, stratify=rest_y,
                                              random_state=SPLIT_SEED)
    all_agree = _read_fpb(folder / "Sentences_AllAgree.txt")
    aa = [(t, y) for t, y in zip(te_x, te_y) if t in all_agree]
    return {
        "train": TextSplit(tr_x, tr_y),
        "val": TextSplit(va_x, va_y),
        "test": TextSplit(te_x, te_y),
        "test_allagree": TextSplit([t for t, _ in aa], [y for _, y in aa]),
    }


def twitter_split(data: Path, part: str) -> TextSplit:
    path = _need(data / "twitter_financial_news_sentiment" / f"sent_{part}.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return TextSplit([r["text"] for r in rows], [TWITTER_LABELS[r["label"]] for r in rows])


def sentfin_single_entity(data: Path) -> TextSplit:
    path = _need(data / "sentfin_v1" / "SEntFiN-v1.0.csv")
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            decisions = json.loads(r["Decisions"])
            if len(decisions) == 1:
                texts.append(r["Title"])
                labels.append(next(iter(decisions.values())))
    return TextSplit(texts, labels)


@dataclass
class EntityHeadline:
    """A headline and the sentiment toward each of its entities: ``(name, label, start, end)``, the span
    ``title[start:end]`` located in the title."""

    title: str
    entities: list[tuple[str, str, int, int]]

    @property
    def conflicting(self) -> bool:
        """Two or more entities with different labels."""
        return len({label for _, label, _, _ in self.entities}) > 1


def locate_entity(title: str, name: str) -> tuple[int, int] | None:
    """The span of ``name`` in ``title``, case-insensitive: first as a whole word, else anywhere; None if absent."""
    name = name.strip()
    if not name:
        return None
    whole = re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", title, flags=re.IGNORECASE)
    if whole:
        return whole.span()
    at = title.casefold().find(name.casefold())
    if at < 0 or len(title.casefold()) != len(title):  # casefold can change lengths (e.g. "ß"): no offsets then
        return None
    return at, at + len(name)


def sentfin_entity_headlines(data: Path) -> tuple[list[EntityHeadline], int, int]:
    """Every distinct SEntFiN headline with its located entities (in file order); how many entities were not
    found in their title; how many were dropped because copies of the headline label them differently.

    A title that occurs more than once (67 do) is one headline with the entities of all its copies (an entity
    the copies label differently is dropped). A headline none of whose entities is found is left out."""
    path = _need(data / "sentfin_v1" / "SEntFiN-v1.0.csv")
    by_title: dict[str, tuple[str, dict[str, set[str]]]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            title, decisions = by_title.setdefault(r["Title"].strip().casefold(), (r["Title"], {}))
            for name, label in json.loads(r["Decisions"]).items():
                decisions.setdefault(name, set()).add(label)
    headlines, missing, ambiguous = [], 0, 0
    for title, decisions in by_title.values():
        found = []
        for name, labels in decisions.items():
            if len(labels) > 1:
                ambiguous += 1
                continue
            span = locate_entity(title, name)
            if span is None:
                missing += 1
                continue
            found.append((name, next(iter(labels)), *span))
        if found:
            headlines.append(EntityHeadline(title, found))
    return headlines, missing, ambiguous


def _headline_stratum(h: EntityHeadline) -> str:
    labels = {label for _, label, _, _ in h.entities}
    return next(iter(labels)) if len(labels) == 1 else "mixed"


def sentfin_entity_splits(data: Path) -> dict:
    """Entity-level sentiment: SEntFiN headlines split 80/10/10 train/val/test by headline (``SPLIT_SEED``,
    stratified by ``_headline_stratum``); ``missing``: the entities whose span was not found in their title;
    ``ambiguous``: the entities that copies of one headline label differently (left out)."""
    headlines, missing, ambiguous = sentfin_entity_headlines(data)
    strata = [_headline_stratum(h) for h in headlines]
    train, rest, _, rest_strata = train_test_split(headlines, strata, test_size=0.2, stratify=strata,
                                                   random_state=SPLIT_SEED)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest_strata, random_state=SPLIT_SEED)
    return {"train": train, "val": val, "test": test, "missing": missing, "ambiguous": ambiguous}


def sentfin_single_entity_test(data: Path) -> TextSplit:
    """The headlines of the entity-level test part (``sentfin_entity_splits``) with exactly one entity, labelled
    with its sentiment: the single-entity set minus every headline a trunk with an entity-sentiment head trains on."""
    test = [h for h in sentfin_entity_splits(data)["test"] if len(h.entities) == 1]
    return TextSplit([h.title for h in test], [h.entities[0][1] for h in test])


SCORE_BAND = 0.1


def score_label(score: float) -> str:
    """A sentiment score in [-1, 1] as a class (``SCORE_BAND`` either side of 0 is neutral)."""
    return "positive" if score > SCORE_BAND else "negative" if score < -SCORE_BAND else "neutral"


def _entity_headlines(items: list[tuple[str, str, float]]) -> list[EntityHeadline]:
    """(title, company, score) rows as headlines (a title's rows are one headline; a company its rows score to
    different classes is dropped; a company not found in the title is skipped), in first-seen order."""
    by_title: dict[str, tuple[str, dict[str, set[str]]]] = {}
    for title, company, score in items:
        entry = by_title.setdefault(title.strip().casefold(), (title.strip(), {}))
        entry[1].setdefault(company.strip(), set()).add(score_label(score))
    out = []
    for title, companies in by_title.values():
        found = [(name, next(iter(labels)), *span) for name, labels in companies.items()
                 if len(labels) == 1 and (span := locate_entity(title, name))]
        if found:
            out.append(EntityHeadline(title, found))
    return out


def semeval_headlines(data: Path) -> list[EntityHeadline]:
    """SemEval-2017 Task 5 headlines, the sentiment toward each located company (evaluation only)."""
    rows = json.loads(_need(data / "semeval2017_task5_headlines" / "SemEval2017Task5Headlines.json")
                      .read_text(encoding="utf-8"))
    return _entity_headlines([(r["title"], r["company"], float(r["sentiment"])) for r in rows])


def headline_key(title: str) -> str:
    """A headline as compared across data sets: case-folded, white space collapsed."""
    return " ".join(title.casefold().split())


def unseen_semeval_headlines(data: Path) -> list[EntityHeadline]:
    """SemEval-2017's headlines that are not also FiQA-2018 headlines (280 of FiQA's are): the part no model
    that trained on FiQA's headlines has seen."""
    fiqa = {headline_key(h.title) for h in fiqa_headlines(data)}
    return [h for h in semeval_headlines(data) if headline_key(h.title) not in fiqa]


def fiqa_headlines(data: Path) -> list[EntityHeadline]:
    """FiQA-2018 Task 1 headlines, the sentiment toward each located target."""
    rows = json.loads(_need(data / "fiqa2018_task1" / "task1_headline_ABSA_train.json").read_text(encoding="utf-8"))
    return _entity_headlines([(r["sentence"], i["target"], float(i["sentiment_score"]))
                              for r in rows.values() for i in r["info"]])


def written_event_headlines(path: Path) -> list[EntityHeadline]:
    """A written event-headline file (``{"text", "label", "entities": [{"name", "start", "end", "label"}]}``)."""
    out = []
    for line in _need(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(EntityHeadline(row["text"], [(e["name"], e["label"], e["start"], e["end"])
                                                    for e in row.get("entities", [])]))
    return out


def agreeing(headlines: list[EntityHeadline]) -> TextSplit:
    """The headlines whose companies all have one label, with that label (a headline-level set)."""
    kept = [h for h in headlines if h.entities and not h.conflicting]
    return TextSplit([h.title for h in kept], [h.entities[0][1] for h in kept])


@dataclass
class TaggedSplit:
    words: list[list[str]]
    tags: list[list[str]]


def conll_split(data: Path, part: str) -> TaggedSplit:
    path = _need(data / "conll2003" / f"{part}.txt")
    words: list[list[str]] = []
    tags: list[list[str]] = []
    cw: list[str] = []
    ct: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if cw:
                words.append(cw)
                tags.append(ct)
            cw, ct = [], []
            continue
        cols = line.split()
        cw.append(cols[0])
        ct.append(cols[-1])
    return TaggedSplit(words, tags)


def banking77_splits(data: Path) -> dict[str, TextSplit]:
    folder = data / "banking77"

    def read(name: str) -> TextSplit:
        with _need(folder / name).open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return TextSplit([r["text"] for r in rows], [r["category"] for r in rows])

    train = read("train.csv")
    tr_x, va_x, tr_y, va_y = train_test_split(train.texts, train.labels, test_size=0.1,
                                              stratify=train.labels, random_state=SPLIT_SEED)
    return {"train": TextSplit(tr_x, tr_y), "val": TextSplit(va_x, va_y), "test": read("test.csv")}


def banking77_labels(data: Path) -> list[str]:
    return json.loads(_need(data / "banking77" / "categories.json").read_text())


# --- the customer's state (chat) ---------------------------------------------------

CUSTOMER_STATES = ["calm", "frustrated", "angry", "leaving"]
WRITTEN = Path(__file__).resolve().parent.parent / "written"  # customer messages written for this project
# GoEmotions labels taken as a customer state; a comment is used only when it has exactly one label.
GOEMOTIONS_STATES = {"anger": "angry", "disgust": "angry", "annoyance": "frustrated",
                     "disappointment": "frustrated", "neutral": "calm", "curiosity": "calm",
                     "confusion": "calm", "gratitude": "calm", "approval": "calm"}
GOEMOTIONS_CAP = {"angry": 1500, "frustrated": 2000, "calm": 2000}
CHURN_INTENTS = {"banking77": escalation.CHURN_INTENTS, "bitext": {"delete_account"}}
# bitext tags requests with offensive language (W); they read as annoyed, not hostile.
BITEXT_OFFENSIVE = "W"


def written_state_splits(path: Path | None = None) -> dict[str, TextSplit]:
    """The written customer messages, stratified 70/15/15 into train / val / test with ``SPLIT_SEED``."""
    path = path or WRITTEN / "customer_state_train.jsonl"
    rows = [json.loads(line) for line in _need(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    labels = [r["state"] for r in rows]
    tr_x, rest_x, tr_y, rest_y = train_test_split(texts, labels, test_size=0.3, stratify=labels,
                                                  random_state=SPLIT_SEED)
    va_x, te_x, va_y, te_y = train_test_split(rest_x, rest_y, test_size=0.5, stratify=rest_y,
                                              random_state=SPLIT_SEED)
    return {"train": TextSplit(tr_x, tr_y), "val": TextSplit(va_x, va_y), "test": TextSplit(te_x, te_y)}


def goemotions_states(data: Path, part: str = "train") -> TextSplit:
    """Single-label GoEmotions comments mapped by ``GOEMOTIONS_STATES``, each state capped (fixed sample)."""
    folder = data / "goemotions"
    names = _need(folder / "labels.txt").read_text(encoding="utf-8").split()
    by_state: dict[str, list[str]] = {}
    for line in _need(folder / f"{part}.tsv").read_text(encoding="utf-8").splitlines():
        text, ids, _ = line.split("\t")
        if "," in ids:
            continue
        state = GOEMOTIONS_STATES.get(names[int(ids)])
        if state:
            by_state.setdefault(state, []).append(text)
    rng = random.Random(SPLIT_SEED)
    texts, labels = [], []
    for state in sorted(by_state):
        pool = by_state[state]
        picked = sorted(rng.sample(range(len(pool)), min(len(pool), GOEMOTIONS_CAP[state])))
        texts += [pool[i] for i in picked]
        labels += [state] * len(picked)
    return TextSplit(texts, labels)


def _banking77_states(split: TextSplit, n_calm: int, seed: int) -> TextSplit:
    """banking77 requests as ``calm`` (a fixed sample of ``n_calm``), churn intents as ``leaving`` (all)."""
    leaving = [t for t, y in zip(split.texts, split.labels) if y in CHURN_INTENTS["banking77"]]
    calm = [t for t, y in zip(split.texts, split.labels) if y not in CHURN_INTENTS["banking77"]]
    calm = [calm[i] for i in sorted(random.Random(seed).sample(range(len(calm)), min(n_calm, len(calm))))]
    return TextSplit(calm + leaving, ["calm"] * len(calm) + ["leaving"] * len(leaving))


def bitext_states(data: Path) -> dict[str, TextSplit]:
    """bitext requests: offensive-tagged ones ``frustrated``, account deletions ``leaving``, the rest ``calm``;
    a fixed stratified 80/20 train/test split."""
    path = _need(data / "bitext_customer_support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    texts, labels = [], []
    for r in rows:
        if BITEXT_OFFENSIVE in r["tags"]:
            state = "frustrated"
        elif r["intent"] in CHURN_INTENTS["bitext"]:
            state = "leaving"
        else:
            state = "calm"
        texts.append(r["instruction"])
        labels.append(state)
    tr_x, te_x, tr_y, te_y = train_test_split(texts, labels, test_size=0.2, stratify=labels,
                                              random_state=SPLIT_SEED)
    return {"train": TextSplit(tr_x, tr_y), "test": TextSplit(te_x, te_y)}


def _capped(split: TextSplit, state: str, cap: int, seed: int) -> TextSplit:
    """``split`` with at most ``cap`` examples of ``state`` (a fixed sample), the others all kept."""
    of_state = [i for i, y in enumerate(split.labels) if y == state]
    keep = set(random.Random(seed).sample(of_state, min(cap, len(of_state))))
    kept = [i for i, y in enumerate(split.labels) if y != state or i in keep]
    return TextSplit([split.texts[i] for i in kept], [split.labels[i] for i in kept])


def _joined(*parts: tuple[str, TextSplit]) -> tuple[TextSplit, list[str]]:
    texts, labels, sources = [], [], []
    for name, split in parts:
        texts += split.texts
        labels += split.labels
        sources.append(f"{name} ({len(split.texts)})")
    return TextSplit(texts, labels), sources


def customer_state_sets(data: Path, written_repeat: int = 3, n_calm_banking77: int = 2000) -> dict:
    """Train / val / test for the customer-state model, and the sources of each (docs/MODELS.md).

    Train: capped single-label GoEmotions comments, banking77 (train part) and bitext (train part)
    customer requests, and the written messages' train part ``written_repeat`` times (they are
    the only customer messages that are upset on purpose). Val (model selection): the written
    messages' val part and banking77's val part. Test: the written messages' test part,
    banking77 test requests and bitext's test part; none of it is seen in training.
    """
    written = written_state_splits()
    banking = banking77_splits(data)
    bitext = bitext_states(data)
    repeated = TextSplit(written["train"].texts * written_repeat, written["train"].labels * written_repeat)
    train, train_sources = _joined(
        ("goemotions/train.tsv, single-label, mapped and capped", goemotions_states(data, "train")),
        ("banking77/train.csv (train part)", _banking77_states(banking["train"], n_calm_banking77, 1)),
        ("bitext (80% part, calm capped at 1,500)", _capped(bitext["train"], "calm", 1500, 4)),
        (f"written customer messages (70% part) x{written_repeat}", repeated))
    val, val_sources = _joined(("written customer messages (15% val part)", written["val"]),
                               ("banking77/train.csv (val part)", _banking77_states(banking["val"], 300, 2)))
    test, test_sources = _joined(("written customer messages (15% test part)", written["test"]),
                                 ("banking77/test.csv", _banking77_states(banking["test"], 300, 3)),
                                 ("bitext (20% part)", bitext["test"]))
    return {"train": train, "val": val, "test": test,
            "sources": {"train": train_sources, "val": val_sources, "test": test_sources}}
