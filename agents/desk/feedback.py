"""Feedback from the desk: the intents a reviewer may correct a draft to, the review counters per intent,
and the corrected intents read back as training rows (``sentinel train intent --feedback``).

The counters live in the desk process, the one place where people decide: every decision is counted
once, when its transaction has committed (approving twice counts once), in
``sentinel_desk_reviews_total{intent, action}``. ``intent`` is the draft's intent as the model read it
(what an auto-reply threshold is set for), ``unknown`` outside the model's labels, so the label values
are bounded (77 banking intents plus ``unknown``); ``action`` is ``approve`` (sent unchanged), ``edit``
(sent after an edit) or ``reject``. Every series exists from start-up at zero, so Prometheus sees a
counter's first decision as an increase and a rate per intent is 0, not missing, for an action never
taken. The desk serves them on its own ``/metrics``; Prometheus scrapes it as the ``sentinel-desk`` job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest
from sqlalchemy import Engine, text

from infra.settings import ARTIFACTS, Settings

ACTIONS = ("approve", "edit", "reject")
UNKNOWN = "unknown"
SHIPPED_INTENT_MODEL = ARTIFACTS / "trunk"

REGISTRY = CollectorRegistry(auto_describe=True)
REVIEWS = Counter("sentinel_desk_reviews_total",
                  "Drafts decided in the desk, by the draft's intent (the model's; unknown outside its labels) and "
                  "action (approve, edit, reject).", ["intent", "action"], registry=REGISTRY)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels_of(folder: Path) -> list[str] | None:
    """The intent labels of a model folder: a Sentinel artefact's ``sentinel.json`` (a trunk's: its intent
    head's), or a Hugging Face ``config.json``."""
    try:
        if (folder / "sentinel.json").is_file():
            meta = json.loads((folder / "sentinel.json").read_text())
            labels = meta["heads"]["intent"]["labels"] if "heads" in meta else meta["labels"]
            return [str(label) for label in labels]
        if (folder / "config.json").is_file():
            id2label = json.loads((folder / "config.json").read_text())["id2label"]
            return [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def known_intents(settings: Settings) -> list[str]:
    """The intents the configured intent model (or the trunk's intent head) knows (a model id that is not a
    local folder: the shipped trunk's 77 banking intents), sorted."""
    labels = _labels_of(Path(settings.intent_model or settings.trunk_model)) or _labels_of(SHIPPED_INTENT_MODEL) or []
    return sorted(set(labels))


class ReviewCounters:
    """``sentinel_desk_reviews_total`` for one label set: every series created at zero, values bounded."""

    def __init__(self, intents: list[str]):
        self.intents = frozenset(intents)
        for intent in [*sorted(self.intents), UNKNOWN]:
            for action in ACTIONS:
                REVIEWS.labels(intent, action)

    def count(self, intent: str | None, action: str) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action is one of {', '.join(ACTIONS)}")
        REVIEWS.labels(intent if intent in self.intents else UNKNOWN, action).inc()


def render() -> bytes:
    return generate_latest(REGISTRY)


# -- corrected intents as training rows ------------------------------------------------------------------
@dataclass(frozen=True)
class Correction:
    text: str  # the customer's message as stored (redacted at the edge)
    intent: str  # the reviewer's corrected intent


def corrected_intents(engine: Engine) -> list[Correction]:
    """Every corrected intent in ``reply_reviews`` with its message's text, oldest decision first."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select m.text, r.corrected_intent from reply_reviews r join chat_messages m on m.id = r.message_id "
            "where r.corrected_intent is not null order by r.reviewed_at, r.id"))
        return [Correction(row.text, row.corrected_intent) for row in rows]
