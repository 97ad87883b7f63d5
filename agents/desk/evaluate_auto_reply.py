"""How many banking77 messages the auto-reply policy would send by itself, and how many of those with
the wrong intent (the intent picks the answer a customer gets), over a range of thresholds, before and
after calibrating the intent scores; and the calibration itself.

    sentinel eval-auto-reply --data ../shared/data --out docs/results/auto_reply.json [--calibrate]

The calibration split is the val part of ``banking77_splits`` (10% of banking77's train file, stratified,
``SPLIT_SEED``): the intent head never trained on it, and the test file stays for the verdict. The trunk's
training read that part only to pick its best epoch (the last of three), which leaves the scores on it as
honest as on any unseen text. ``--calibrate`` fits the temperature and the risk-controlled threshold there
(``models/calibration.py``) and writes them to ``SENTINEL_AUTO_REPLY_CALIBRATION``.

The drafts are composed as the worker composes them (intent, customer state, retrieval, escalation
rules) without the opening, which changes neither the intent nor the escalation.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

from agents.desk.auto_reply import AutoReplyPolicy, default_threshold

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
RISK_TARGETS = (0.0025, 0.005, 0.01, 0.02, 0.03)  # wrong-intent share among sent messages
RISK_TARGET = 0.005  # the default's: at most 0.5% of auto-sent messages answer another question
DELTA = 0.1  # the chance that the chosen threshold's true wrong share exceeds its target
CALIBRATION_SPLIT = "val"
COMMAND = "sentinel eval-auto-reply --data ../shared/data --out docs/results/auto_reply.json --calibrate"
BATCH = 256
SHOWN_AT = 0.99  # the report lists the test messages this threshold sends with the wrong intent


def curve(rows: list[dict], thresholds=THRESHOLDS, overrides: dict | None = None) -> list[dict]:
    """For each threshold: share of messages auto-sent, how many of those had a wrong intent, and the same
    without the escalation rules (score alone). ``rows`` hold ``gold``, ``intent``, ``score``, ``escalate``."""
    n = len(rows)
    out = []
    for t in thresholds:
        policy = AutoReplyPolicy(True, t, overrides or {})
        sent = [r for r in rows if policy.allows(r["intent"], r["score"], r["escalate"])]
        wrong = sum(r["intent"] != r["gold"] for r in sent)
        by_score = [r for r in rows if policy.allows(r["intent"], r["score"], False)]
        wrong_by_score = sum(r["intent"] != r["gold"] for r in by_score)
        out.append({
            "threshold": t, "auto_sent": len(sent), "auto_share": round(len(sent) / n, 4) if n else 0.0,
            "wrong_intent": wrong, "wrong_rate": round(wrong / len(sent), 4) if sent else 0.0,
            "score_only_sent": len(by_score), "score_only_wrong": wrong_by_score,
        })
    return out


def choose_threshold(rows: list[dict], target: float, delta: float = DELTA) -> float | None:
    """The risk-controlled threshold on these (calibration) rows: see ``models.calibration``."""
    from models.calibration import risk_controlled_threshold

    return risk_controlled_threshold([r["score"] for r in rows], [r["intent"] != r["gold"] for r in rows],
                                     target, delta, sendable=[not r["escalate"] for r in rows])


def wrong_sent(rows: list[dict], threshold: float) -> list[dict]:
    """The messages a threshold would send with the wrong intent, most confident first: what a reader checks
    against the gold label."""
    policy = AutoReplyPolicy(True, threshold, {})
    wrong = [r for r in rows if policy.allows(r["intent"], r["score"], r["escalate"]) and r["intent"] != r["gold"]]
    return [{k: r[k] for k in ("text", "intent", "gold", "score")} for r in sorted(wrong, key=lambda r: -r["score"])]


def risk_curve(calibration_rows: list[dict], test_rows: list[dict], targets=RISK_TARGETS) -> list[dict]:
    """Per risk target: the threshold chosen on the calibration rows, and what it sends on both."""
    out = []
    for target in targets:
        t = choose_threshold(calibration_rows, target)
        measured = {name: curve(rows, (t,))[0] if t is not None else None
                    for name, rows in (("calibration", calibration_rows), ("test", test_rows))}
        out.append({"risk_target": target, "threshold": t, **measured})
    return out


def progress(what: str, done: int, total: int) -> None:
    print(f"{what}: {done}/{total}", file=sys.stderr, flush=True)


def read_split(name: str, split, intents, sentiment, states, retriever) -> dict:
    """What composing needs, once per text: raw intent logits (and the intent teacher's, if served), sentiment,
    customer state, retrieval embedding."""
    import torch

    logits, teacher, sentiments, customer, queries = [], [], [], [], []
    for start in range(0, len(split.texts), BATCH):
        texts = split.texts[start:start + BATCH]
        logits += intents.run(intents.encode(texts))
        if intents.teacher is not None:
            teacher.append(intents.teacher_logits(texts))
        sentiments += sentiment.predict(texts)
        customer += states.predict(texts)
        queries.append(retriever.embed(texts))
        progress(f"banking77 {name}", start + len(texts), len(split.texts))
    return {"texts": split.texts, "labels": split.labels, "logits": torch.stack(logits).float(),
            "teacher_logits": torch.cat(teacher) if teacher else None, "sentiments": sentiments,
            "states": customer, "queries": torch.cat(queries)}


def served_logits(read: dict):
    """The logits the served scores are a softmax of (at the temperature): the pair's mean with a teacher."""
    teacher = read["teacher_logits"]
    return read["logits"] if teacher is None else (read["logits"] + teacher) / 2


def draft_rows(read: dict, intents, composer, temperature: float) -> list[dict]:
    """Drafts composed from intents decoded at ``temperature``: gold, intent, score, escalate per message."""
    intents.temperature = temperature
    texts = read["texts"]
    decoded = intents.read(read["logits"], read["teacher_logits"])
    drafts = composer.compose(texts, decoded, read["sentiments"], [[] for _ in texts], states=read["states"],
                              queries=read["queries"])
    return [{"text": t, "gold": g, "intent": d.intent, "score": d.intent_score, "escalate": d.escalate}
            for t, g, d in zip(texts, read["labels"], drafts)]


def fit(read: dict, labels: list[str], rows_at, settings, shown: str):
    """The calibration fitted on the calibration split's ``read``: temperature by NLL, then the threshold."""
    from models.calibration import (
        IntentCalibration,
        fit_temperature,
        intent_model_digest,
    )

    index = {label: i for i, label in enumerate(labels)}
    logits = served_logits(read).numpy()
    temperature = round(fit_temperature(logits, [index[g] for g in read["labels"]]), 4)
    threshold = choose_threshold(rows_at(temperature), RISK_TARGET)
    return IntentCalibration(
        model=shown, model_sha256=intent_model_digest(settings), temperature=temperature,
        threshold=None if threshold is None else round(threshold, 6), risk_target=RISK_TARGET, delta=DELTA,
        split=f"banking77 {CALIBRATION_SPLIT} part (10% of train.csv, stratified, SPLIT_SEED)",
        n=len(read["labels"]), command=COMMAND)


def measure(data: Path, calibrate: bool = False) -> dict:
    from infra.settings import Settings, project_relative
    from models.calibration import calibration_for
    from models.customer_state import CustomerStateClassifier
    from models.escalation import EscalationPolicy
    from models.intent import IntentClassifier
    from models.knowledge import Retriever
    from models.replies import ReplyComposer
    from models.sentiment import SentimentClassifier
    from models.training import datasets
    from models.training.evaluation import intent_model_name

    settings = Settings()
    splits = datasets.banking77_splits(data)
    intents = IntentClassifier.from_settings(settings)
    sentiment = SentimentClassifier.from_settings(settings)
    states = CustomerStateClassifier.from_settings(settings)
    retriever = Retriever.from_settings(settings)
    composer = ReplyComposer(retriever, None, EscalationPolicy.from_settings(settings))
    shown = intent_model_name(settings)
    started = time.perf_counter()
    read = {name: read_split(name, splits[name], intents, sentiment, states, retriever)
            for name in (CALIBRATION_SPLIT, "test")}

    def rows_at(name: str, temperature: float) -> list[dict]:
        return draft_rows(read[name], intents, composer, temperature)

    fitted = fit(read[CALIBRATION_SPLIT], intents.labels, lambda t: rows_at(CALIBRATION_SPLIT, t), settings, shown)
    if calibrate:
        fitted.write(settings.auto_reply_calibration)
    served = calibration_for(settings)  # what the worker loads: the file, if fitted on this model
    temperature = served.temperature if served else 1.0
    raw = {name: rows_at(name, 1.0) for name in read}
    calibrated = {name: rows_at(name, fitted.temperature) for name in read}
    test = rows_at("test", temperature)
    threshold = default_threshold(settings)
    n = len(test)
    return {
        "data": "banking77 test", "n": n, "model": shown,
        "intent_accuracy": round(sum(r["intent"] == r["gold"] for r in test) / n, 4),
        "escalated": sum(r["escalate"] for r in test),
        "calibration": {**asdict(fitted), "file": project_relative(str(settings.auto_reply_calibration)),
                        "served": served is not None},
        "default_threshold": None if math.isinf(threshold) else threshold, "default_temperature": temperature,
        "at_default": curve(test, (threshold,))[0] | {"threshold": None if math.isinf(threshold) else threshold},
        "curve": curve(test),
        "curves": {
            "uncalibrated": {name: curve(rows) for name, rows in raw.items()},
            "calibrated": {name: curve(rows) for name, rows in calibrated.items()},
        },
        "risk_targets": risk_curve(calibrated[CALIBRATION_SPLIT], calibrated["test"]),
        "risk_targets_uncalibrated": risk_curve(raw[CALIBRATION_SPLIT], raw["test"]),
        "wrong_sent_at": {"threshold": SHOWN_AT, "messages": wrong_sent(test, SHOWN_AT)},
        "seconds": round(time.perf_counter() - started, 1),
    }
