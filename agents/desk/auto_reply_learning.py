"""Per-intent auto-reply thresholds learnt from the desk's decisions (``reply_reviews``).

    sentinel auto-reply learn [--out overrides.json]

Evidence: a person's decision (approve, edit, reject; not the auto-sends) on a draft whose intent score
was at or above the global threshold, i.e. a draft the policy would have sent had it not been escalated.
It was wrong when the person rejected it or corrected its intent. Per intent, with wrong ones among them:

- enough decisions to certify the target (``models.calibration.fewest_to_certify``): the intent's own
  risk-controlled threshold (the calibration's rule on its decisions), never below the global one, or
  ``null`` (never) when no threshold passes;
- fewer: ``null`` when the wrong share is surely above the target (the lower Clopper-Pearson bound
  exceeds it), else a threshold just above the highest-scored wrong draft.

Intents without a wrong decision keep the global threshold: the rules only tighten. Entries already in
the overrides file stay unless the learnt one is stricter.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scipy.stats import beta
from sqlalchemy import text
from sqlalchemy.engine import Engine

from agents.desk.auto_reply import NEVER
from models.calibration import fewest_to_certify, risk_controlled_threshold


@dataclass(frozen=True)
class Review:
    intent: str  # the model's intent when the decision was taken
    score: float  # its intent score
    wrong: bool  # rejected, or its intent corrected


def read_reviews(engine: Engine) -> list[Review]:
    """Every person's decision on a draft, with the draft's intent score."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select r.intent, d.intent_score, r.action, r.corrected_intent from reply_reviews r "
            "join reply_drafts d on d.message_id = r.message_id where r.action <> 'auto' order by r.id"))
        return [Review(row.intent, row.intent_score,
                       row.action == "reject" or (row.corrected_intent is not None
                                                  and row.corrected_intent != row.intent))
                for row in rows]


def lower_bound(wrong: int, decided: int, delta: float) -> float:
    """One-sided Clopper-Pearson lower bound of a wrong share observed as ``wrong`` of ``decided``."""
    return 0.0 if wrong == 0 else float(beta.ppf(delta, wrong, decided - wrong + 1))


def learn_overrides(reviews: Iterable[Review], floor: float, target: float, delta: float) -> dict[str, float]:
    """Per intent the desk found wrong, a threshold stricter than ``floor`` (the global one), NEVER for never."""
    by_intent: dict[str, list[Review]] = defaultdict(list)
    for review in reviews:
        if review.score >= floor:
            by_intent[review.intent].append(review)
    out: dict[str, float] = {}
    for intent, decided in sorted(by_intent.items()):
        wrong = [r for r in decided if r.wrong]
        if not wrong:
            continue
        if len(decided) >= fewest_to_certify(target, delta):
            own = risk_controlled_threshold([r.score for r in decided], [r.wrong for r in decided], target, delta)
            threshold = NEVER if own is None else own
        elif lower_bound(len(wrong), len(decided), delta) > target:
            threshold = NEVER
        else:
            threshold = math.nextafter(max(r.score for r in wrong), math.inf)
            threshold = NEVER if threshold > 1 else threshold
        if threshold > floor:
            out[intent] = threshold
    return out


def merged(existing: Mapping[str, float], learnt: Mapping[str, float]) -> dict[str, float | None]:
    """The overrides file's content: per intent the stricter of the two, ``None`` (JSON null) for never."""
    out = dict(existing)
    for intent, threshold in learnt.items():
        out[intent] = max(out.get(intent, -1.0), threshold)
    return {intent: None if math.isinf(t) else t for intent, t in sorted(out.items())}
