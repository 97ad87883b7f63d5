"""Evaluation on the fixed splits of ``models.training.datasets``; figures go to docs/MODELS.md."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rich.table import Table
from sklearn.metrics import accuracy_score, f1_score, recall_score

from infra.progress import console, progress
from infra.settings import PROJECT_ROOT, Settings, get_settings, project_relative
from models.training import datasets

EVENT_HEADLINES = PROJECT_ROOT / "models" / "written" / "event_headlines.jsonl"  # labelled event headlines


def _in_chunks(label: str, items: Sequence, fn: Callable[[list], list], chunk: int = 256) -> list:
    out: list = []
    with progress() as bar:
        task = bar.add_task(label, total=len(items), info="")
        for start in range(0, len(items), chunk):
            part = list(items[start : start + chunk])
            out += fn(part)
            bar.update(task, advance=len(part))
    return out


def _classification(name: str, model, split: datasets.TextSplit, sentiment: bool = True) -> dict:
    started = time.perf_counter()
    predicted = [p.label for p in _in_chunks(name, split.texts, model.predict)]
    elapsed = time.perf_counter() - started
    scores = _scores(split.labels, predicted) if sentiment else {
        "accuracy": round(accuracy_score(split.labels, predicted), 4),
        "macro_f1": round(f1_score(split.labels, predicted, average="macro"), 4)}
    return {"n": len(split.texts), **scores, "sentences_per_second": round(len(split.texts) / elapsed, 1)}


def evaluate_sentiment(data: Path, settings: Settings, sentfin: bool = True) -> dict:
    from models.sentiment import SentimentClassifier

    model = SentimentClassifier.from_settings(settings)
    fpb = datasets.fpb_splits(data)
    report = {
        "task": "sentiment", "model": _task_model(settings, "sentiment_model", "sentiment"),
        "fpb_test": _classification("FPB test", model, fpb["test"]),
        "fpb_test_allagree": _classification("FPB test ∩ AllAgree", model, fpb["test_allagree"]),
        "twitter_valid": _classification("twitter valid", model, datasets.twitter_split(data, "valid")),
    }
    if sentfin:  # reported, not a bar: the test suite leaves it out to save time
        report["sentfin_single_entity"] = _classification("SEntFiN single-entity", model,
                                                          datasets.sentfin_single_entity(data))
        # the part of it no trunk trains on (an entity-sentiment head trains on the rest)
        report["sentfin_single_entity_test"] = _classification("SEntFiN single-entity, test part", model,
                                                               datasets.sentfin_single_entity_test(data))
    # real headlines: all of SemEval-2017's, then the part that is not also in FiQA-2018 (which the served models
    # train on: 280 of its headlines are SemEval's); then the written event headlines (the selection set)
    report["semeval2017_headlines"] = _classification(
        "SemEval-2017 headlines", model, datasets.agreeing(datasets.semeval_headlines(data)))
    report["semeval2017_headlines_unseen"] = _classification(
        "SemEval-2017 headlines not in FiQA", model, datasets.agreeing(datasets.unseen_semeval_headlines(data)))
    if EVENT_HEADLINES.is_file():
        report["event_headlines"] = _classification("event headlines", model, read_labelled_jsonl(EVENT_HEADLINES))
    return report


def evaluate_entities(data: Path, settings: Settings) -> dict:
    from seqeval.metrics import classification_report
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.scheme import IOB2

    from models.entities import EntityRecognizer, tag_words

    recognizer = EntityRecognizer.from_settings(settings.model_copy(update={"max_length": 256}))
    report = {"task": "entities", "model": _task_model(settings, "entity_model", "entities")}
    for part in ("valid", "test"):
        split = datasets.conll_split(data, part)
        started = time.perf_counter()
        predicted = _in_chunks(f"CoNLL {part}", split.words, lambda ws: tag_words(recognizer, ws))
        elapsed = time.perf_counter() - started
        per_type = classification_report(split.tags, predicted, mode="strict", scheme=IOB2, output_dict=True)
        report[f"conll_{part}"] = {
            "n": len(split.words),
            "f1": round(seq_f1(split.tags, predicted, mode="strict", scheme=IOB2), 4),
            "per_type_f1": {k: round(float(v["f1-score"]), 4) for k, v in per_type.items() if k.isupper()},
            "sentences_per_second": round(len(split.words) / elapsed, 1),
        }
    return report


def evaluate_intent(data: Path, settings: Settings) -> dict:
    from models.intent import IntentClassifier

    model = IntentClassifier.from_settings(settings)
    return {"task": "intent", "model": intent_model_name(settings),
            "banking77_test": _classification("banking77 test", model, datasets.banking77_splits(data)["test"],
                                             sentiment=False)}


def _per_class(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, n = precision_recall_fscore_support(gold, predicted, labels=list(labels), zero_division=0)
    return {label: {"precision": round(float(p[k]), 4), "recall": round(float(r[k]), 4),
                    "f1": round(float(f[k]), 4), "n": int(n[k])} for k, label in enumerate(labels)}


def evaluate_customer_state(data: Path, settings: Settings) -> dict:
    """Per-class precision and recall on the held-out customer messages and on the escalation set."""
    from models.customer_state import LABELS, CustomerStateClassifier

    model = CustomerStateClassifier.from_settings(settings)
    sets = datasets.customer_state_sets(data)
    report = {"task": "customer-state", "model": _task_model(settings, "customer_state_model", "customer_state")}
    escalation = load_escalation_set()
    for name, texts, gold in (("held_out_test", sets["test"].texts, sets["test"].labels),
                              ("escalation_set", [r["text"] for r in escalation], [r["state"] for r in escalation])):
        predicted = [p.label for p in _in_chunks(name, texts, model.predict)]
        report[name] = {"n": len(texts), "accuracy": round(accuracy_score(gold, predicted), 4),
                        "macro_f1": round(f1_score(gold, predicted, labels=LABELS, average="macro"), 4),
                        "per_class": _per_class(gold, predicted, LABELS)}
    report["sources"] = sets["sources"]
    return report


ESCALATION_SET = datasets.WRITTEN / "escalation_eval.jsonl"


def load_escalation_set(path: Path = ESCALATION_SET) -> list[dict]:
    """The fixed escalation set (models/written/README.md): text, context (newest first), state, needs_person, why."""
    import json

    return [json.loads(line) for line in datasets._need(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def evaluate_escalation(data: Path, settings: Settings) -> dict:
    """Escalation precision and recall on the fixed escalation set, with the chat models as the worker runs
    them (intent with context, customer state, repeated contact), the generator left out (it decides nothing)."""
    from models.chat import ChatInput, ChatModels, chat_analyzer
    from models.customer_state import CustomerStateClassifier
    from models.escalation import EscalationPolicy
    from models.intent import IntentClassifier
    from models.knowledge import Retriever
    from models.replies import ReplyComposer

    rows = load_escalation_set()
    models = ChatModels(chat_analyzer(settings), IntentClassifier.from_settings(settings),
                        ReplyComposer(Retriever.from_settings(settings), None, EscalationPolicy.from_settings(settings)),
                        CustomerStateClassifier.from_settings(settings))
    inputs = [ChatInput(r["text"], tuple(r["context"])) for r in rows]
    results = _in_chunks("escalation set", inputs, models.infer, chunk=32)
    drafts = [draft for _, _, _, draft in results]
    gold = [bool(r["needs_person"]) for r in rows]
    said = [d.escalate for d in drafts]
    tp = sum(g and s for g, s in zip(gold, said))
    by_why = {}
    for why in sorted({r["why"] for r in rows if r["needs_person"]}):
        picked = [s for r, s in zip(rows, said) if r["why"] == why]
        by_why[why] = {"n": len(picked), "recall": round(sum(picked) / len(picked), 4)}
    false_alarms: dict[str, int] = {}
    for g, d in zip(gold, drafts):
        if d.escalate and not g:
            for reason in d.reasons:
                false_alarms[reason.split(":")[0]] = false_alarms.get(reason.split(":")[0], 0) + 1
    misses = [{"id": r["id"], "why": r["why"], "text": r["text"][:120], "reasons": d.reasons}
              for r, g, d in zip(rows, gold, drafts) if g and not d.escalate]
    return {
        "n": len(rows), "needing_a_person": sum(gold), "escalated": sum(said),
        "precision": round(tp / max(1, sum(said)), 4), "recall": round(tp / max(1, sum(gold)), 4),
        "recall_by_why": by_why, "false_alarm_reasons": false_alarms,
        "intent_accuracy": round(sum(d.intent == r["intent"] for d, r in zip(drafts, rows) if r["intent"])
                                 / max(1, sum(1 for r in rows if r["intent"])), 4),
        "misses": misses[:10],
    }


def run(task: str, data: Path, model: str | None = None, event_headlines: Path | None = EVENT_HEADLINES) -> dict:
    """``task``'s report; ``model``: the model to evaluate instead of the configured one (for
    ``entity-sentiment`` and ``cascade``: the trunk)."""
    settings = get_settings()
    if model and task in ("entity-sentiment", "cascade"):
        settings = settings.model_copy(update={"trunk_model": model})
    elif model:
        field = {"sentiment": "sentiment_model", "entities": "entity_model", "headline-entities": "entity_model",
                 "intent": "intent_model",
                 "customer-state": "customer_state_model", "replies": "generator_model"}[task]
        settings = settings.model_copy(update={field: model})
    if task == "cascade":
        report = evaluate_cascade(data, settings, event_headlines=event_headlines)
    elif task == "entity-sentiment":
        report = evaluate_entity_sentiment(data, settings, event_headlines=event_headlines)
    else:
        report = {"sentiment": evaluate_sentiment, "entities": evaluate_entities, "intent": evaluate_intent,
                  "customer-state": evaluate_customer_state, "replies": evaluate_replies,
                  "entity-sentiment": evaluate_entity_sentiment,
                  "headline-entities": evaluate_headline_entities}[task](data, settings)
    report["model"] = project_relative(str(report["model"]))
    if task != "replies":  # the encoders' number format (the generator keeps its own)
        from models.runtime import dtype_name

        report["dtype"] = dtype_name(settings.device, settings.dtype)
    return report


def _task_model(settings: Settings, field: str, head: str) -> str:
    """What serves a task: the model its setting names, or the trunk's head."""
    return getattr(settings, field) or f"{settings.trunk_model} (head {head})"


def intent_model_name(settings: Settings) -> str:
    """What reads chat intents, for reports: the intent model (or the trunk's head), and the teacher beside it."""
    name = project_relative(_task_model(settings, "intent_model", "intent"))
    if settings.intent_teacher_model:
        name += f" + {project_relative(settings.intent_teacher_model)} (mean logits)"
    return name


def print_report(report: dict) -> None:
    if report["task"] == "sentiment-cascade":
        return print_cascade(report)
    if report["task"] == "headline-entities":
        return print_headline_entities(report)
    table = Table(title=f"{report['task']} — {report['model']}" + (f" ({report['dtype']})" if "dtype" in report else ""))
    table.add_column("split")
    table.add_column("n", justify="right")
    table.add_column("figures")
    for split, figures in report.items():
        if isinstance(figures, dict) and split not in ("samples", "sources"):
            shown = {k: v for k, v in figures.items() if k != "n"}
            table.add_row(split, str(figures.get("n", "")), ", ".join(f"{k}={v}" for k, v in shown.items()))
    console.print(table)


def evaluate_replies(data: Path, settings: Settings, n: int = 100) -> dict:
    """Drafts for a fixed sample of banking77 test messages: intent, grounding, safety, length."""
    import random

    from models.chat import chat_analyzer
    from models.generator import ReplyGenerator
    from models.intent import IntentClassifier
    from models.knowledge import Retriever
    from models.escalation import EscalationPolicy
    from models.training.openings_eval import evaluate_openings
    from models.replies import CONTACT, PLACEHOLDER, ReplyComposer

    test = datasets.banking77_splits(data)["test"]
    picks = sorted(random.Random(datasets.SPLIT_SEED).sample(range(len(test.texts)), n))
    texts = [test.texts[i] for i in picks]
    gold = [test.labels[i] for i in picks]
    retriever = Retriever.from_settings(settings)
    composer = ReplyComposer(retriever, ReplyGenerator.from_settings(settings), EscalationPolicy.from_settings(settings),
                             settings.chat_opening)
    analyzer = chat_analyzer(settings)
    intents = IntentClassifier.from_settings(settings)

    def draft_chunk(chunk: list[str]) -> list:
        analysed = analyzer.analyze_texts(chunk)
        return composer.compose(chunk, intents.predict(chunk), [a[0] for a in analysed], [a[1] for a in analysed])

    started = time.perf_counter()
    drafts = _in_chunks("drafts", texts, draft_chunk, chunk=16)
    elapsed = time.perf_counter() - started
    gold_answers = [retriever.by_intent[g].answer for g in gold]
    kb_text = " ".join(e.answer for e in retriever.entries)
    verbatim = [retriever.search([t], k=1)[0][0][0].answer for t in texts]
    unsafe = [d for d in drafts if PLACEHOLDER.search(d.text)
              or any(m not in kb_text for m in CONTACT.findall(d.text))]
    grounding = retriever.similarity([d.text for d in drafts], gold_answers)
    baseline = retriever.similarity(verbatim, gold_answers)
    samples = [{"message": t, "intent": d.intent, "escalate": d.escalate, "reason": d.escalation_reason,
                "draft": d.text} for t, d in list(zip(texts, drafts))[:10]]
    return {
        "task": "replies", "model": composer.generator.source,
        "banking77_test_sample": {
            "n": n, "intent_accuracy": round(sum(d.intent == g for d, g in zip(drafts, gold)) / n, 4),
            "grounding_mean": round(sum(grounding) / n, 4),
            "grounding_baseline_retrieved_verbatim": round(sum(baseline) / n, 4),
            "unsafe_rate": round(len(unsafe) / n, 4),
            "generated_opening_rate": round(sum(d.generated_opening for d in drafts) / n, 4),
            "escalated_rate": round(sum(d.escalate for d in drafts) / n, 4),
            "mean_words": round(sum(len(d.text.split()) for d in drafts) / n, 1),
            "drafts_per_second": round(n / elapsed, 2),
        },
        "escalation_set": evaluate_escalation(data, settings),
        "retrieval_banking77_test": evaluate_retrieval(data, settings),
        "redaction_set": _redaction_summary(),
        "openings": evaluate_openings(settings, composer=composer, analyzer=analyzer, intents=intents),
        "samples": samples,
    }


def evaluate_retrieval(data: Path, settings: Settings) -> dict:
    """Knowledge-base retrieval on banking77 test: is the top entry's intent the message's? With the base
    encoder's query embedding (what the index is built with) and, where the trunk serves chat, with the
    trunk's embedding head, which chat uses instead of a pass of its own."""
    from models.knowledge import Retriever
    from models.trunk import EMBEDDING, Trunk, load_trunk

    test = datasets.banking77_splits(data)["test"]
    retriever = Retriever.from_settings(settings)
    queries = {"base_encoder": lambda chunk: retriever.embed(chunk)}
    if not settings.intent_model and EMBEDDING in load_trunk(settings).meta["heads"]:
        trunk = Trunk(load_trunk(settings), {}, settings.max_length, settings.max_batch, settings.token_budget)
        queries["trunk_embedding_head"] = lambda chunk: trunk.read(chunk, [EMBEDDING])[EMBEDDING]
    top: dict[str, list] = {}
    for name, embed in queries.items():
        top[name] = _in_chunks(f"retrieval ({name})", test.texts,
                               lambda chunk, e=embed: [h[0][0] for h in retriever.search(chunk, 1, e(chunk))])
    report = {"n": len(test.texts)}
    for name, entries in top.items():
        report[f"{name}_top1_intent_accuracy"] = round(
            sum(e.intent == g for e, g in zip(entries, test.labels)) / len(test.texts), 4)
    if len(top) == 2:
        report["same_top1_entry"] = round(sum(a.id == b.id for a, b in zip(*top.values())) / len(test.texts), 4)
    return report


def _redaction_summary() -> dict:
    """``models/training/redaction_eval.py`` on its fixed set: overall and per type (details: ``sentinel eval-redaction``)."""
    from models.training.redaction_eval import evaluate_redaction

    return evaluate_redaction()


# --- entity-level sentiment (the trunk's entity-sentiment head) -------------------------


def _scores(gold: Sequence[str], predicted: Sequence[str]) -> dict:
    return {"accuracy": round(accuracy_score(gold, predicted), 4),
            "macro_f1": round(f1_score(gold, predicted, labels=datasets.SENTIMENT_LABELS, average="macro"), 4),
            # a monitor is judged by its silences: the share of negative texts read as negative, on its own
            "negative_recall": round(recall_score(gold, predicted, labels=["negative"], average="macro",
                                                  zero_division=0), 4)}


def evaluate_entity_sentiment(data: Path, settings: Settings,
                              event_headlines: Path | None = EVENT_HEADLINES) -> dict:
    """The entity-sentiment head on gold entity spans: SEntFiN's entity-level test part (all headlines, and the
    headlines with conflicting labels on their own) and its validation part, the written event headlines (the
    selection set) and SemEval-2017's real headlines (never trained on); beside each, the headline's own
    sentiment (the sentiment head) given to every entity of the headline."""
    from models.sentiment import SentimentClassifier
    from models.trunk import Trunk, load_trunk

    loaded = load_trunk(settings)
    trunk = Trunk(loaded, {}, settings.max_length, settings.max_batch, settings.token_budget)
    if not trunk.has_entity_sentiment:
        raise ValueError(f"{settings.trunk_model} has no entity-sentiment head; train one with "
                         "`sentinel train trunk --entity-sentiment-repeat N`")
    headline_head = SentimentClassifier(replace(loaded, labels=list(loaded.meta["heads"]["sentiment"]["labels"]),
                                                meta={**loaded.meta, "head": "sentiment", "head_kind": "sequence"}),
                                        settings.max_length, settings.max_batch, settings.token_budget)

    def scored(headlines: list) -> tuple[Callable[[list[int]], dict], float]:
        texts = [h.title for h in headlines]
        started = time.perf_counter()
        readings = trunk.entity_sentiments(texts, [[(a, b) for _, _, a, b in h.entities] for h in headlines])
        per_second = sum(len(h.entities) for h in headlines) / max(time.perf_counter() - started, 1e-9)
        whole_texts = headline_head.predict(texts)

        def part(which: list[int]) -> dict:
            gold = [e[1] for k in which for e in headlines[k].entities]
            got = [r.label if r else "none" for k in which for r in readings[k]]
            whole = [whole_texts[k].label for k in which for _ in headlines[k].entities]
            return {"headlines": len(which), "n": len(gold), **_scores(gold, got),
                    "headline_sentiment_for_every_entity": _scores(gold, whole)}
        return part, round(per_second, 1)

    splits = datasets.sentfin_entity_splits(data)
    test = splits["test"]
    every = list(range(len(test)))
    part, per_second = scored(test)
    report = {"task": "entity-sentiment", "model": f"{settings.trunk_model} (head entity_sentiment)",
              "split": "sentfin_v1/SEntFiN-v1.0.csv, entity level, test part by headline "
                       "(models.training.datasets.sentfin_entity_splits)",
              "entities_not_found_in_titles": splits["missing"],
              "sentfin_entity_test": {**part(every), "entities_per_second": per_second},
              "sentfin_entity_test_conflicting": part([k for k in every if test[k].conflicting])}
    others = {"sentfin_entity_val": splits["val"], "semeval2017_headlines": datasets.semeval_headlines(data),
              "semeval2017_headlines_unseen": datasets.unseen_semeval_headlines(data)}
    if event_headlines is not None and event_headlines.is_file():
        others["event_headlines"] = datasets.written_event_headlines(event_headlines)
    for name, headlines in others.items():
        part, _ = scored(headlines)
        report[name] = part(list(range(len(headlines))))
    return report


# --- the sentiment cascade: student, and the teacher under a margin ----------------------

CASCADE_MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.01)


def read_labelled_jsonl(path: Path) -> datasets.TextSplit:
    """{"text", "label" (or "sentiment")} lines as a split."""
    import json

    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            label = row.get("label", row.get("sentiment"))
            label = label.get("label") if isinstance(label, dict) else label
            texts.append(row["text"])
            labels.append(str(label).lower())
    return datasets.TextSplit(texts, labels)


def cascade_sets(data: Path, event_headlines: Path | None = EVENT_HEADLINES) -> dict[str, datasets.TextSplit]:
    fpb = datasets.fpb_splits(data)
    sets = {"fpb_val": fpb["val"], "fpb_test": fpb["test"], "fpb_test_allagree": fpb["test_allagree"],
            "twitter_valid": datasets.twitter_split(data, "valid"),
            "sentfin_single_entity_test": datasets.sentfin_single_entity_test(data)}
    sets["semeval2017_headlines"] = datasets.agreeing(datasets.semeval_headlines(data))
    sets["semeval2017_headlines_unseen"] = datasets.agreeing(datasets.unseen_semeval_headlines(data))
    if event_headlines is not None and event_headlines.is_file():
        sets["event_headlines"] = read_labelled_jsonl(event_headlines)
    return sets


def _timed_readings(name: str, model, texts: list[str]) -> tuple[list, float]:
    started = time.perf_counter()
    readings = _in_chunks(name, texts, model.predict)
    return readings, time.perf_counter() - started


class _TeacherCache:
    """The teacher's readings of each evaluation set and the seconds they took, kept between runs (the teacher
    does not change with the student under it): one file, by teacher version and the set's texts."""

    def __init__(self, path: Path, version: str):
        import json

        self.path, self.version = path, version
        self.sets = json.loads(path.read_text()) if path.is_file() else {}

    def _key(self, name: str, texts: Sequence[str]) -> str:
        import hashlib

        return f"{self.version}:{name}:" + hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]

    def get(self, name: str, texts: Sequence[str]) -> tuple[list, float] | None:
        from models.sentiment import Sentiment

        found = self.sets.get(self._key(name, texts))
        if found is None:
            return None
        return [Sentiment(r["label"], r["score"], r["scores"]) for r in found["readings"]], found["seconds"]

    def put(self, name: str, texts: Sequence[str], readings: list, seconds: float) -> tuple[list, float]:
        import json

        self.sets[self._key(name, texts)] = {"seconds": seconds, "readings": [r.as_dict() for r in readings]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.sets))
        return readings, seconds


def evaluate_cascade(data: Path, settings: Settings, margins: Sequence[float] = CASCADE_MARGINS,
                     event_headlines: Path | None = EVENT_HEADLINES) -> dict:
    """Per set and per margin: the share of texts the cascade sends to the teacher, the accuracy and macro-F1 of
    the cascade's labels, and its texts per second (the student's measured time on every text plus the teacher's
    measured time per text on the routed share). The student and the teacher each read every text once (the
    teacher's readings and times are kept in CACHE_DIR/cascade_teacher_readings.json for the next student); at
    ``settings.sentiment_cascade_margin`` the cascade itself (``SentimentCascade``) is also run on FPB test,
    timed, and its labels checked against the computed ones."""
    from models.sentiment import SentimentCascade, SentimentClassifier, combined, margin

    off = settings.model_copy(update={"sentiment_cascade": "off"})
    student = SentimentClassifier.from_settings(off)
    teacher = SentimentCascade.from_settings(settings).teacher
    report = {"task": "sentiment-cascade", "model": _task_model(settings, "sentiment_model", "sentiment"),
              "teacher": project_relative(settings.sentiment_cascade_model), "margins": list(margins), "sets": {}}
    cache = _TeacherCache(settings.cache_dir / "cascade_teacher_readings.json", teacher.loaded.version)
    for name, split in cascade_sets(data, event_headlines).items():
        s_read, s_time = _timed_readings(f"{name}: student", student, split.texts)
        t_read, t_time = cache.get(name, split.texts) or cache.put(
            name, split.texts, *_timed_readings(f"{name}: teacher", teacher, split.texts))
        margins_of = [margin(r) for r in s_read]
        rows = []
        for m in margins:
            routed = [x < m for x in margins_of]
            labels = [combined(s, t).label if r else s.label for s, t, r in zip(s_read, t_read, routed)]
            share = sum(routed) / len(routed)
            rows.append({"margin": m, "routed": round(share, 4), **_scores(split.labels, labels),
                         "texts_per_second": round(len(labels) / (s_time + t_time * share), 1)})
        report["sets"][name] = {"n": len(split.texts), "student_texts_per_second": round(len(split.texts) / s_time, 1),
                                "teacher_texts_per_second": round(len(split.texts) / t_time, 1), "curve": rows}
    fpb_test = datasets.fpb_splits(data)["test"]
    cascade = SentimentCascade(teacher, settings.sentiment_cascade_margin)
    student.cascade = cascade
    readings, elapsed = _timed_readings("FPB test: cascade", student, fpb_test.texts)
    report["measured_cascade_fpb_test"] = {
        "margin": settings.sentiment_cascade_margin, "n": len(readings), "routed": round(cascade.routed / cascade.seen, 4),
        **_scores(fpb_test.labels, [r.label for r in readings]),
        "texts_per_second": round(len(readings) / elapsed, 1)}
    return report


def print_cascade(report: dict) -> None:
    table = Table(title=f"sentiment cascade: {report['model']} under the margin, {report['teacher']} below it"
                  + (f" ({report['dtype']})" if "dtype" in report else ""))
    names = list(report["sets"])
    table.add_column("margin", justify="right")
    for name in names:
        table.add_column(f"{name} ({report['sets'][name]['n']})\nrouted / acc / F1 / texts/s", justify="right")
    for k, m in enumerate(report["margins"]):
        cells = []
        for name in names:
            row = report["sets"][name]["curve"][k]
            cells.append(f"{row['routed']:.3f} / {row['accuracy']:.4f} / {row['macro_f1']:.4f} / "
                         f"{row['texts_per_second']:.0f}")
        table.add_row(f"{m:g}", *cells)
    console.print(table)
    console.print(f"measured cascade on FPB test: {report['measured_cascade_fpb_test']}")


# --- ORG mentions in real headlines (models/written/news_headline_orgs.jsonl) ------------

ORG_LIKE = ("ORG", "TICKER")  # the labels that name an organisation (TICKER: a cashtag or exchange ticker, by rule)


def _most_common(items: Sequence[tuple[str, str]], top: int = 15) -> list[dict]:
    """(surface, note) pairs counted by surface, most common first, each with its first note."""
    counts: dict[str, list] = {}
    for surface, note in items:
        counts.setdefault(surface, [0, note])[0] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
    return [{"text": surface, "count": n, "example": note} for surface, (n, note) in ranked]


def org_span_report(rows: Sequence[dict], entities: Sequence[Sequence]) -> dict:
    """ORG precision and recall (``headline_orgs.span_scores``) of ``entities`` (one list of ``Entity`` per row)
    against the rows' gold ORG spans, with the most common misses (gold spans no ORG-like entity overlaps, with
    what the model called them), false positives (ORG-like entities over no gold span) and boundary errors."""
    from models.training.headline_orgs import _overlaps, span_scores

    gold = [[(o["start"], o["end"]) for o in r["orgs"]] for r in rows]
    said = [[e for e in row if e.label in ORG_LIKE] for row in entities]
    report = span_scores(gold, [[(e.start, e.end) for e in row] for row in said])
    misses, false_positives, boundaries = [], [], []
    for r, g, s, every in zip(rows, gold, said, entities):
        for o, span in zip(r["orgs"], g):
            if not any(_overlaps(span, (e.start, e.end)) for e in s):
                read_as = [f"{e.label}:{e.text}" for e in every if _overlaps(span, (e.start, e.end))]
                misses.append((o["text"], f"{r['id']}: {r['text']} (read as {', '.join(read_as) or 'nothing'})"))
            elif span not in [(e.start, e.end) for e in s]:
                boundaries.append((o["text"], f"{r['id']}: " + ", ".join(
                    repr(e.text) for e in s if _overlaps(span, (e.start, e.end)))))
        for e in s:
            if not any(_overlaps((e.start, e.end), span) for span in g):
                false_positives.append((e.text, f"{r['id']}: {r['text']} ({e.label})"))
    return {"n": len(rows), **report, "misses": len(misses), "false_positives": len(false_positives),
            "boundary_errors": len(boundaries), "top_misses": _most_common(misses),
            "top_false_positives": _most_common(false_positives), "top_boundary_errors": _most_common(boundaries)}


def _linker():
    """The entity linker over the default universe (``models.companies.linking``): per entity, the linked
    company or None."""
    from models.companies import default_universe
    from models.companies.linking import Universe, link_mentions

    universe = Universe(default_universe())
    return lambda text, entities: [link.company if link else None for link in link_mentions(entities, text, universe)]


def _is_gold(company, gold: dict | None) -> bool:
    """A link is right when the gold company's ticker is one of the linked company's (its id or a listing's
    symbol; share classes written ``BRK.B`` or ``BRK-B``), or, for a gold company the master lists without
    symbols, when the names agree (``name_key``)."""
    from models.companies.linking import name_key

    if not gold or not gold.get("ticker"):
        return False

    def form(symbol: str) -> str:
        return symbol.upper().replace("-", ".")

    if isinstance(company, dict):
        return form(str(company.get("ticker") or "")) == form(gold["ticker"])
    symbols = {form(company.id), *(form(t.symbol) for t in company.tickers)}
    same_name = not company.tickers and bool(gold.get("name")) and name_key(gold["name"]) in {
        name_key(n) for n in (company.name, *company.aliases)}
    return form(gold["ticker"]) in symbols or same_name


def linking_report(rows: Sequence[dict], link) -> dict:
    """The linker on the gold ORG spans: of the mentions it links, the share linked to the gold company's ticker
    (a mention of an unlisted company or of no company has no right link), and wrong links over all mentions."""
    from models.entities import Entity

    right = wrong = linked = 0
    for r in rows:
        spans = [Entity(o["text"], "ORG", o["start"], o["end"], 1.0) for o in r["orgs"]]
        companies = link(r["text"], spans) if spans else []
        for o, company in zip(r["orgs"], companies):
            if company is None:
                continue
            linked += 1
            if _is_gold(company, o["company"]):
                right += 1
            else:
                wrong += 1
    mentions = sum(len(r["orgs"]) for r in rows)
    listed = sum(1 for r in rows for o in r["orgs"] if (o["company"] or {}).get("ticker"))
    return {"mentions": mentions, "listed_mentions": listed, "linked": linked,
            "linked_right": round(right / linked, 4) if linked else None,
            "wrong_links_over_mentions": round(wrong / mentions, 4) if mentions else None,
            "listed_linked_right": round(right / listed, 4) if listed else None}


def served_linking_report(rows: Sequence[dict], entities: Sequence[Sequence], link) -> dict:
    """The linker end to end, on the mentions as served (``entities``: the model's ORG and TICKER spans after
    ``correct_mentions``): of the mentions it links, those over a gold ORG span linked to that span's company are
    right; a link to another company, or over no gold span at all (an index, a show, a person), is wrong. Wrong
    links are counted over the gold mentions too, the bar's measure, with examples."""
    from models.training.headline_orgs import _overlaps

    right = wrong = linked = 0
    examples = []
    for r, found in zip(rows, entities):
        said = [e for e in found if e.label in ORG_LIKE]
        for e, company in zip(said, link(r["text"], said) if said else []):
            if company is None:
                continue
            linked += 1
            gold = [o for o in r["orgs"] if _overlaps((o["start"], o["end"]), (e.start, e.end))]
            if gold and any(_is_gold(company, o["company"]) for o in gold):
                right += 1
            else:
                wrong += 1
                examples.append((e.text, f"{r['id']}: {r['text']} -> {company.name}"))
    mentions = sum(len(r["orgs"]) for r in rows)
    return {"mentions": mentions, "linked": linked, "linked_right": round(right / linked, 4) if linked else None,
            "wrong_links": wrong, "wrong_links_over_mentions": round(wrong / mentions, 4) if mentions else None,
            "top_wrong_links": _most_common(examples)}


def evaluate_headline_entities(data: Path, settings: Settings) -> dict:
    """ORG mentions in real Reuters and CNBC headlines (``models/written/news_headline_orgs.jsonl``): the served
    entity model's ORG and TICKER spans, with the company names the default universe knows added as served
    (``correct_mentions``; the head alone under ``entity_head_<part>``), against the labels, strict and by overlap, on the held-out test part (the
    figure) and on the training part; and the entity linker's accuracy on the gold ORG spans."""
    from models.entities import EntityRecognizer
    from models.training.headline_orgs import HEADLINE_ORGS, load_headline_orgs

    recognizer = EntityRecognizer.from_settings(settings)
    report = {"task": "headline-entities", "model": _task_model(settings, "entity_model", "entities"),
              "set": "models/written/news_headline_orgs.jsonl (models/written/README.md)", "labels": list(ORG_LIKE)}
    from models.companies import default_universe
    from models.companies.linking import Universe, correct_mentions

    universe = Universe(default_universe())
    link = _linker()
    for split in ("test", "train"):
        rows = load_headline_orgs(HEADLINE_ORGS, split)
        entities = _in_chunks(f"headlines, {split} part", [r["text"] for r in rows], recognizer.predict, chunk=64)
        report[f"entity_head_{split}"] = {k: v for k, v in org_span_report(rows, entities).items()
                                          if k in ("n", "gold", "predicted", "strict", "overlap")}
        for r, found in zip(rows, entities):  # as served: the company names the universe knows join the head's
            correct_mentions(found, r["text"], universe)
        report[f"headlines_{split}"] = org_span_report(rows, entities)
        for source in sorted({r["source"] for r in rows}):
            picked = [k for k, r in enumerate(rows) if r["source"] == source]
            part = org_span_report([rows[k] for k in picked], [entities[k] for k in picked])
            report[f"headlines_{split}"][f"by_source:{source}"] = {
                k: part[k] for k in ("n", "gold", "predicted", "strict", "overlap")}
        report[f"linking_{split}"] = linking_report(rows, link)
        report[f"served_linking_{split}"] = served_linking_report(rows, entities, link)
    return report


def print_headline_entities(report: dict) -> None:
    table = Table(title=f"ORG mentions in real headlines — {report['model']} ({report.get('dtype', '')})")
    for column in ("part", "headlines", "gold", "predicted", "strict P / R / F1", "overlap P / R / F1"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for split in ("test", "train"):
        part = report[f"headlines_{split}"]
        rows = [(split, part)] + [(f"  {k.split(':')[1].split('_')[0]}", v) for k, v in part.items()
                                  if k.startswith("by_source:")]
        for name, figures in rows:
            table.add_row(name, str(figures["n"]), str(figures["gold"]), str(figures["predicted"]),
                          *(" / ".join(f"{figures[m][k]:.3f}" for k in ("precision", "recall", "f1"))
                            for m in ("strict", "overlap")))
    console.print(table)
    test = report["headlines_test"]
    for title, key in (("most common misses", "top_misses"), ("most common false positives", "top_false_positives")):
        console.print(f"test part, {title}: " + ", ".join(f"{m['text']} ({m['count']})" for m in test[key][:10]))
    console.print(f"linking (test part): {report['linking_test']}")
    served = {k: v for k, v in report["served_linking_test"].items() if k != "top_wrong_links"}
    console.print(f"linking as served (test part): {served}; wrong: "
                  + ", ".join(f"{m['text']} ({m['count']})" for m in report["served_linking_test"]["top_wrong_links"]))
