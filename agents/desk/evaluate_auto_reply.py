"""How many banking77 test messages the auto-reply policy would send by itself, and how many of
those with the wrong intent (the intent picks the answer a customer gets), over a range of thresholds.

    sentinel eval-auto-reply --data ../shared/data --out docs/results/auto_reply.json

The drafts are composed as the worker composes them (intent, customer state, retrieval, escalation
rules) without the opening, which changes neither the intent nor the escalation.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agents.desk.auto_reply import AutoReplyPolicy

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)


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


def shown_model(model: str) -> str:
    """A model inside the project as its relative path (the report is committed)."""
    from infra.settings import PROJECT_ROOT

    root = str(PROJECT_ROOT) + "/"
    return model[len(root):] if model.startswith(root) else model


def measure(data: Path) -> dict:
    from infra.settings import Settings
    from models.training import datasets
    from models.intent import IntentClassifier
    from models.knowledge import Retriever
    from models.escalation import EscalationPolicy
    from models.replies import ReplyComposer
    from models.customer_state import CustomerStateClassifier
    from models.sentiment import SentimentClassifier

    settings = Settings()
    test = datasets.banking77_splits(data)["test"]
    intents = IntentClassifier.from_settings(settings)
    sentiment = SentimentClassifier.from_settings(settings)
    states = CustomerStateClassifier.from_settings(settings)
    composer = ReplyComposer(Retriever.from_settings(settings), None, EscalationPolicy.from_settings(settings))
    started = time.perf_counter()
    rows: list[dict] = []
    for start in range(0, len(test.texts), 256):
        texts = test.texts[start:start + 256]
        drafts = composer.compose(texts, intents.predict(texts), sentiment.predict(texts), [[] for _ in texts],
                                  states=states.predict(texts))
        rows += [{"gold": g, "intent": d.intent, "score": d.intent_score, "escalate": d.escalate}
                 for g, d in zip(test.labels[start:start + 256], drafts)]
        print(f"{len(rows)}/{len(test.texts)}", file=sys.stderr, flush=True)
    n = len(rows)
    default = next(c for c in curve(rows) if c["threshold"] == settings.auto_reply_min_score)
    return {
        "data": "banking77 test", "n": n, "model": shown_model(settings.intent_model or f"{settings.trunk_model} (head intent)"),
        "intent_accuracy": round(sum(r["intent"] == r["gold"] for r in rows) / n, 4),
        "escalated": sum(r["escalate"] for r in rows),
        "default_threshold": settings.auto_reply_min_score, "at_default": default,
        "curve": curve(rows), "seconds": round(time.perf_counter() - started, 1),
    }
