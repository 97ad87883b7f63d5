"""Calibrated intent scores and the auto-reply threshold that keeps wrong answers rare.

Two steps, both fitted on a held-out calibration split (``sentinel eval-auto-reply --calibrate``):

- temperature scaling: one temperature ``T`` for the intent head's logits, the one that minimises the
  negative log-likelihood of the split's true intents; the score is then ``max softmax(logits / T)``;
- a risk-controlled threshold (Learn then Test, fixed-sequence): thresholds are tried from the strictest
  down, and a threshold is accepted while the one-sided Clopper-Pearson upper bound (confidence
  ``1 - delta``) of the wrong-intent share among the messages it would send stays at or under the
  target. Stopping at the first failure keeps the chance of accepting a threshold whose true share
  exceeds the target under ``delta`` without any correction for the number of thresholds tried. The
  sequence starts at the strictest threshold that sends enough messages for a clean record to pass
  (``fewest_to_certify``: 460 for 0.5% at delta 0.1), since stricter ones can only fail.

The artefact (a small JSON) names the model it was fitted on by a digest of its weights: a retrained
model ignores a stale calibration (temperature 1, the configured threshold) instead of misusing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from scipy.stats import beta

log = logging.getLogger(__name__)


def fit_temperature(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The temperature that minimises the mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(logits))
    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean())

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(best.x))


def top_scores(logits: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's predicted class and its probability under softmax(logits / temperature)."""
    probs = softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return probs.argmax(axis=1), probs.max(axis=1)


def upper_bound(wrong: int, sent: int, delta: float) -> float:
    """One-sided Clopper-Pearson upper bound of a wrong share observed as ``wrong`` of ``sent``."""
    if sent == 0:
        return 1.0
    if wrong >= sent:
        return 1.0
    return float(beta.ppf(1 - delta, wrong + 1, sent - wrong))


def risk_controlled_threshold(scores: Sequence[float], wrong: Sequence[bool], target: float,
                              delta: float = 0.1, sendable: Sequence[bool] | None = None) -> float | None:
    """The lowest score threshold whose wrong share among sent messages is certified <= ``target``.

    ``scores``: each calibration message's score; ``wrong``: whether its intent was wrong; ``sendable``:
    whether the policy could send it at all (not escalated; default all). Candidates are the distinct scores
    of sendable messages, tried from the highest down (fixed-sequence testing); None when not even the
    strictest passes (then nothing should be sent)."""
    scores = np.asarray(scores, dtype=np.float64)
    wrong = np.asarray(wrong, dtype=bool)
    keep = np.ones(len(scores), bool) if sendable is None else np.asarray(sendable, dtype=bool)
    scores, wrong = scores[keep], wrong[keep]
    order = np.argsort(-scores, kind="stable")
    scores, wrong = scores[order], wrong[order]
    wrong_so_far = np.cumsum(wrong)
    chosen = None
    i = max(fewest_to_certify(target, delta), 1) - 1  # the sequence starts where a clean record can pass
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and scores[j + 1] == scores[j]:  # ties are sent together
            j += 1
        if upper_bound(int(wrong_so_far[j]), j + 1, delta) > target:
            break
        chosen = float(scores[j])
        i = j + 1
    return chosen


def fewest_to_certify(target: float, delta: float) -> int:
    """The fewest sent messages whose bound can reach ``target`` at all (none of them wrong):
    (1 - target)^k <= delta. Stricter thresholds send fewer and can never pass, so the fixed sequence
    starts here instead of failing at once on the few messages at the very top."""
    return math.ceil(math.log(delta) / math.log1p(-target))


def model_digest(source: str | Path) -> str:
    """sha256 of a model folder's weight files (``*.safetensors``, ``*.bin``), or of the name itself when it is
    not a folder (a hub id): what a calibration is tied to."""
    folder = Path(source)
    digest = hashlib.sha256()
    files = sorted(p for p in folder.glob("*") if p.suffix in {".safetensors", ".bin"}) if folder.is_dir() else []
    if not files:
        digest.update(str(source).encode())
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class IntentCalibration:
    model: str  # the intent model as shown in reports
    model_sha256: str  # ``intent_model_digest``: the weights the intent scores come from
    temperature: float
    threshold: float | None  # on the calibrated score; None: no threshold met the target (never send)
    risk_target: float
    delta: float
    split: str
    n: int
    command: str

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> IntentCalibration:
        """Raises ValueError naming the file for anything unreadable or incomplete."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            calibration = cls(**data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"cannot read the intent calibration {path}: {exc}") from None
        if not (isinstance(calibration.temperature, (int, float)) and calibration.temperature > 0):
            raise ValueError(f"the intent calibration {path} needs a positive temperature")
        if calibration.threshold is not None and not 0 <= calibration.threshold <= 1:
            raise ValueError(f"the intent calibration {path} needs a threshold in [0, 1] or null")
        return calibration


def intent_model_source(settings) -> str:
    """The folder (or id) the served intent head comes from: its own model, else the trunk."""
    return settings.intent_model or settings.trunk_model


def intent_model_digest(settings) -> str:
    """What a calibration is tied to: ``model_digest`` of the served intent model, and with an intent teacher
    (``SENTINEL_INTENT_TEACHER_MODEL``) of both, since the scores then come from the pair."""
    digest = model_digest(intent_model_source(settings))
    if not settings.intent_teacher_model:
        return digest
    return hashlib.sha256(f"{digest}+{model_digest(settings.intent_teacher_model)}".encode()).hexdigest()


def calibration_for(settings) -> IntentCalibration | None:
    """The calibration ``SENTINEL_AUTO_REPLY_CALIBRATION`` names when it was fitted on the intent model these
    settings serve; None (logged) when there is none or it belongs to another model."""
    path = settings.auto_reply_calibration
    if path is None or not Path(path).exists():
        return None
    calibration = IntentCalibration.read(path)
    if calibration.model_sha256 != intent_model_digest(settings):
        source = " + ".join(filter(None, (intent_model_source(settings), settings.intent_teacher_model)))
        log.warning("the intent calibration %s was fitted on another model than %s: intent scores stay "
                    "uncalibrated; refit it with `sentinel eval-auto-reply --calibrate`", path, source)
        return None
    return calibration
