"""When a reply draft may go to the customer without a person: the auto-reply policy.

A draft is sent by itself only when auto-reply is on, the draft is not escalated, and its
intent's confidence is at or above the threshold: the intent's own entry in
``SENTINEL_AUTO_REPLY_OVERRIDES`` (``null`` there means never), else ``SENTINEL_AUTO_REPLY_MIN_SCORE``,
else the threshold calibrated for the served intent model (``models/calibration.py``), whose scores
are then temperature-scaled (``IntentClassifier``). The policy is a pure function of those values, so
the worker, the evaluation and the tests share it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

NEVER = math.inf  # a threshold no score reaches
UNCALIBRATED = 0.9  # the threshold without a calibration for the served intent model


@dataclass(frozen=True)
class AutoReplyPolicy:
    enabled: bool = True
    min_score: float = 0.9
    overrides: Mapping[str, float] = field(default_factory=dict)  # intent -> threshold (NEVER for never)

    def threshold(self, intent: str) -> float:
        return self.overrides.get(intent, self.min_score)

    def allows(self, intent: str, intent_score: float, escalate: bool) -> bool:
        """True when a draft of this intent and confidence may be sent without review."""
        if not self.enabled or escalate:
            return False
        if not isinstance(intent_score, (int, float)) or math.isnan(intent_score):
            return False
        return intent_score >= self.threshold(intent)

    @classmethod
    def from_settings(cls, settings) -> AutoReplyPolicy:
        overrides = read_overrides(settings.auto_reply_overrides) if settings.auto_reply_overrides else {}
        return cls(settings.auto_reply == "on", default_threshold(settings), overrides)


def default_threshold(settings) -> float:
    """``SENTINEL_AUTO_REPLY_MIN_SCORE`` when set, else the calibrated threshold of the served intent model
    (``models/calibration.py``; a calibration that met no threshold means never), else UNCALIBRATED."""
    from models.calibration import calibration_for

    if settings.auto_reply_min_score is not None:
        return settings.auto_reply_min_score
    calibration = calibration_for(settings)
    if calibration is None:
        return UNCALIBRATED
    return NEVER if calibration.threshold is None else calibration.threshold


def read_overrides(path: Path) -> dict[str, float]:
    """``{"intent": 0.95, "other_intent": null}`` → thresholds; null means never auto-send that intent.
    Raises ValueError (with the file named) for anything else."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the auto-reply overrides {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the auto-reply overrides {path} must be a JSON object of intent: score or null")
    out: dict[str, float] = {}
    for intent, value in data.items():
        if value is None:
            out[intent] = NEVER
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
            out[intent] = float(value)
        else:
            raise ValueError(f"the auto-reply override for {intent!r} in {path} must be a score in [0, 1] or null")
    return out
