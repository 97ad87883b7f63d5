"""Calibrated intent scores and the auto-reply threshold (models/calibration.py), the policy's use of them,
and the per-intent thresholds learnt from the desk's decisions (agents/desk/auto_reply_learning.py), these on
a real (embedded) PostgreSQL. The logits here come from a fake model (``fake_model_logits``), named as such."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import insert, text

from agents.desk.auto_reply import (
    NEVER,
    UNCALIBRATED,
    AutoReplyPolicy,
    default_threshold,
)
from agents.desk.auto_reply_learning import (
    Review,
    learn_overrides,
    merged,
    read_reviews,
)
from infra.settings import PROJECT_ROOT, Settings
from models.calibration import (
    IntentCalibration,
    calibration_for,
    fewest_to_certify,
    fit_temperature,
    model_digest,
    risk_controlled_threshold,
    top_scores,
    upper_bound,
)
from models.intent import IntentClassifier
from schemas.tables import ChatMessage, ReplyDraft, ReplyReview


def fake_model_logits(n: int, classes: int, true_temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fake model's logits and labels drawn from softmax(logits / true_temperature): the temperature that
    calibrates these logits is ``true_temperature`` by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, classes))
    probs = np.exp(logits / true_temperature)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_temperature_scaling_recovers_the_fake_models_temperature(true_temperature):
    logits, labels = fake_model_logits(6000, 10, true_temperature, seed=3)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.06)


def test_top_scores_are_the_tempered_softmax():
    logits = np.array([[2.0, 1.0, 0.0]])
    _, raw = top_scores(logits, 1.0)
    label, sharp = top_scores(logits, 0.5)
    assert label[0] == 0 and sharp[0] > raw[0]
    assert sharp[0] == pytest.approx(math.exp(4) / (math.exp(4) + math.exp(2) + 1))


def fake_scored_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a fake, calibrated model: each message is wrong with probability 1 - its score."""
    rng = np.random.default_rng(seed)
    scores = 1 - rng.beta(0.3, 6.0, size=n)
    wrong = rng.random(n) > scores
    return scores, wrong


def wrong_share(scores, wrong, threshold) -> float:
    sent = scores >= threshold
    return wrong[sent].sum() / sent.sum()


@pytest.mark.parametrize("seed", range(5))
def test_the_risk_controlled_threshold_keeps_the_wrong_share_under_the_target(seed):
    scores, wrong = fake_scored_set(20000, seed)
    target, delta = 0.01, 0.01  # each seed may miss with probability delta at most
    threshold = risk_controlled_threshold(scores, wrong, target, delta)
    assert threshold is not None
    assert wrong_share(scores, wrong, threshold) <= target
    assert wrong_share(scores, wrong, 0.0) > 3 * target  # sending everything would break the target
    # the model's true wrong share among what it sends: the mean of 1 - score over a million new messages
    population, _ = fake_scored_set(1_000_000, seed + 100)
    assert (1 - population[population >= threshold]).mean() <= target
    # it is the lowest the bound allows: one step lower the bound (not the share) passes the target
    below = scores[scores < threshold].max()
    sent = scores >= below
    assert upper_bound(int(wrong[sent].sum()), int(sent.sum()), delta) > target


def test_the_threshold_ignores_escalated_messages_and_gives_up_when_nothing_passes():
    scores = np.linspace(0.999, 0.5, 2000)
    wrong = np.zeros(2000, bool)
    wrong[::50] = True  # 2% wrong everywhere
    assert risk_controlled_threshold(scores, wrong, 0.005) is None
    sendable = ~wrong  # the wrong ones are escalated: what can be sent is clean
    assert risk_controlled_threshold(scores, wrong, 0.005, sendable=sendable) == pytest.approx(0.5)
    assert risk_controlled_threshold(scores[:100], wrong[:100] & False, 0.005) is None  # too few to certify
    assert fewest_to_certify(0.005, 0.1) == 460


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]), st.booleans()), min_size=1, max_size=600))
def test_a_chosen_threshold_always_passes_its_own_bound(pairs):
    scores = np.array([s for s, _ in pairs])
    wrong = np.array([w for _, w in pairs])
    threshold = risk_controlled_threshold(scores, wrong, 0.05, delta=0.2)
    if threshold is not None:
        sent = scores >= threshold  # ties are sent together
        assert upper_bound(int(wrong[sent].sum()), int(sent.sum()), 0.2) <= 0.05


# -- the policy and the served scores ---------------------------------------------------------------------

class FakeLoadedIntentModel:
    """Stands in for a loaded intent head: only its labels are read by ``decode``."""

    labels = ("card_arrival", "exchange_rate", "top_up_failed")


def calibration_file(tmp_path, model_folder, temperature=0.5, threshold=0.97) -> IntentCalibration:
    calibration = IntentCalibration(model="fake", model_sha256=model_digest(model_folder), temperature=temperature,
                                    threshold=threshold, risk_target=0.005, delta=0.1, split="fake", n=1,
                                    command="none")
    calibration.write(tmp_path / "intent.json")
    return calibration


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "trunk"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"fake weights")
    return folder


def test_the_policy_sends_on_the_calibrated_score(tmp_path, model_folder):
    calibration_file(tmp_path, model_folder, temperature=0.5, threshold=0.97)
    s = Settings(trunk_model=str(model_folder), intent_model="", intent_teacher_model="", auto_reply_calibration=tmp_path / "intent.json")
    policy = AutoReplyPolicy.from_settings(s)
    assert policy.min_score == 0.97
    classifier = IntentClassifier(FakeLoadedIntentModel())
    logits = [torch.tensor([4.0, 0.5, 0.0])]
    raw = classifier.decode(["where is my card"], [], logits)[0]
    classifier.temperature = calibration_for(s).temperature
    calibrated = classifier.decode(["where is my card"], [], logits)[0]
    assert raw.score < 0.97 <= calibrated.score  # only the calibrated score reaches the threshold
    assert not policy.allows(raw.label, raw.score, False)
    assert policy.allows(calibrated.label, calibrated.score, False)


def test_a_calibration_applies_only_to_its_own_model(tmp_path, model_folder):
    calibration_file(tmp_path, model_folder, threshold=0.97)
    path = tmp_path / "intent.json"
    (model_folder / "adapter_model.safetensors").write_bytes(b"retrained weights")  # another model now
    s = Settings(trunk_model=str(model_folder), intent_model="", intent_teacher_model="", auto_reply_calibration=path)
    assert calibration_for(s) is None and default_threshold(s) == UNCALIBRATED
    calibration_file(tmp_path, model_folder, threshold=0.97)
    s = Settings(trunk_model=str(model_folder), intent_model="", intent_teacher_model="", auto_reply_calibration=path)
    assert default_threshold(s) == 0.97
    assert default_threshold(s.model_copy(update={"auto_reply_min_score": 0.8})) == 0.8  # the setting wins
    calibration_file(tmp_path, model_folder, threshold=None)  # no threshold met the target: never
    assert default_threshold(s) == NEVER
    assert default_threshold(s.model_copy(update={"auto_reply_calibration": tmp_path / "none.json"})) == UNCALIBRATED


class FakeIntentTeacher:
    """Stands in for a second intent model: fixed logits for every text, the same labels."""

    labels = FakeLoadedIntentModel.labels

    def __init__(self, logits: list[float]):
        self.logits = torch.tensor(logits)
        self.read_texts: list[str] = []

    def encode(self, texts):
        self.read_texts += list(texts)
        return list(texts)

    def run(self, encoded):
        return [self.logits for _ in encoded]


def test_with_a_teacher_the_intent_is_read_from_the_mean_of_both_logits():
    classifier = IntentClassifier(FakeLoadedIntentModel())
    student = [torch.tensor([5.0, 1.0, -4.0])]  # sure of card_arrival
    alone = classifier.decode(["where is my card"], [], student)[0]
    classifier.teacher = FakeIntentTeacher([-1.0, 4.0, 0.0])  # sure of exchange_rate
    paired = classifier.decode(["where is my card"], [], student)[0]
    assert classifier.teacher.read_texts == ["where is my card"]  # the teacher read the same text
    assert alone.label == "card_arrival" and paired.label == "exchange_rate"
    expected = torch.softmax(torch.tensor([2.0, 2.5, -2.0]), dim=-1)
    assert paired.score == pytest.approx(float(expected.max()), abs=1e-6)
    assert paired.score < alone.score  # disagreement lowers the confidence auto-reply reads


def test_a_calibration_for_the_student_alone_is_not_used_with_a_teacher(tmp_path, model_folder):
    from models.calibration import intent_model_digest

    teacher = tmp_path / "intent_teacher"
    teacher.mkdir()
    (teacher / "adapter_model.safetensors").write_bytes(b"fake teacher weights")
    path = tmp_path / "intent.json"
    calibration_file(tmp_path, model_folder, threshold=0.97)  # fitted on the student alone
    alone = Settings(trunk_model=str(model_folder), intent_model="", intent_teacher_model="", auto_reply_calibration=path)
    paired = alone.model_copy(update={"intent_teacher_model": str(teacher)})
    assert calibration_for(alone) is not None and calibration_for(paired) is None
    IntentCalibration(model="fake pair", model_sha256=intent_model_digest(paired), temperature=1.0, threshold=0.95,
                      risk_target=0.005, delta=0.1, split="fake", n=1, command="none").write(path)
    assert calibration_for(paired).threshold == 0.95 and calibration_for(alone) is None
    (teacher / "adapter_model.safetensors").write_bytes(b"retrained teacher")  # the pair changed
    assert calibration_for(paired) is None


def test_the_committed_calibration_is_readable_and_fitted_on_the_served_intent_models():
    calibration = IntentCalibration.read(Settings().auto_reply_calibration)
    assert calibration.temperature > 0 and calibration.n > 0 and calibration.risk_target == 0.005
    assert "--calibrate" in calibration.command
    assert calibration_for(Settings()) == calibration  # the default models' digest: refit after retraining either


# -- per-intent thresholds from the desk's decisions ------------------------------------------------------

def reviews(intent: str, scores, wrong_from: int) -> list[Review]:
    return [Review(intent, s, i >= wrong_from) for i, s in enumerate(scores)]


def test_learning_tightens_only_intents_the_desk_finds_wrong():
    few_clean = reviews("card_arrival", [0.95, 0.99], wrong_from=9)
    # one wrong in 30 (the 0.98 draft): not sure evidence of more than 0.5% wrong, so just above that score
    few_one_wrong = reviews("exchange_rate", [*np.linspace(0.91, 0.97, 29), 0.98], wrong_from=29)
    mostly_wrong = reviews("top_up_failed", [0.95] * 10, wrong_from=9)  # 1 of 10 wrong: surely over 0.5%
    below_floor = reviews("pin_blocked", [0.5, 0.6], wrong_from=0)  # would not have been sent anyway
    learnt = learn_overrides(few_clean + few_one_wrong + mostly_wrong + below_floor, 0.9, 0.005, 0.1)
    assert set(learnt) == {"exchange_rate", "top_up_failed"}
    assert 0.98 < learnt["exchange_rate"] < 0.9801
    assert learnt["top_up_failed"] == NEVER


def test_learning_with_many_decisions_uses_the_intents_own_risk_controlled_threshold():
    scores = list(np.linspace(0.9, 1.0, 1000))
    decided = [Review("card_arrival", s, i < 30) for i, s in enumerate(scores)]  # the 30 lowest were wrong
    learnt = learn_overrides(decided, 0.9, 0.005, 0.1)
    threshold = learnt["card_arrival"]
    assert scores[20] < threshold <= scores[30]  # most wrong ones left out, the clean 970 all kept
    kept = [r for r in decided if r.score >= threshold]
    assert sum(r.wrong for r in kept) / len(kept) <= 0.005
    all_wrong = [Review("exchange_rate", s, i % 10 == 0) for i, s in enumerate(scores)]  # 10% wrong everywhere
    assert learn_overrides(all_wrong, 0.9, 0.005, 0.1) == {"exchange_rate": NEVER}


def test_learnt_thresholds_never_loosen_the_overrides_file():
    assert merged({"card_arrival": 0.5, "exchange_rate": NEVER}, {"card_arrival": 0.99, "exchange_rate": 0.95}) \
        == {"card_arrival": 0.99, "exchange_rate": None}


def add_decision(conn, message_id: str, intent: str, score: float, action: str, corrected: str | None = None):
    conn.execute(insert(ChatMessage.__table__).values(
        id=message_id, conversation_id=f"c-{message_id}", text="<b>hostile</b> text", sentiment_label="neutral",
        negative=0.1, entities=[], kafka_partition=0, kafka_offset=0, event_time=datetime.now(UTC)))
    conn.execute(insert(ReplyDraft.__table__).values(
        message_id=message_id, conversation_id=f"c-{message_id}", intent=intent, intent_score=score,
        draft="A draft.", escalate=True, escalation_reason=None, retrieved=[], generator="none"))
    conn.execute(insert(ReplyReview.__table__).values(
        message_id=message_id, action=action, final_text=None, reason="r" if action == "reject" else None,
        reviewer="auto" if action == "auto" else "alice", intent=intent, corrected_intent=corrected))


@pytest.mark.integration
def test_sentinel_auto_reply_learn_reads_the_desks_decisions(engine, tmp_path):
    with engine.begin() as conn:
        conn.execute(text("truncate reply_reviews, reply_drafts, chat_messages cascade"))
        for i in range(6):  # exchange_rate: corrected five times in six, at high scores
            add_decision(conn, f"x{i}", "exchange_rate", 0.99, "approve" if i == 0 else "edit",
                         None if i == 0 else "exchange_charge")
        add_decision(conn, "c0", "card_arrival", 0.95, "approve")
        add_decision(conn, "c1", "card_arrival", 0.97, "edit", corrected="card_arrival")  # the same intent: right
        add_decision(conn, "t0", "top_up_failed", 0.96, "reject")  # one rejection: just above its score
        add_decision(conn, "a0", "atm_support", 0.99, "auto")  # an auto-send is no decision
        add_decision(conn, "a1", "atm_support", 0.5, "reject")  # below the global threshold: no evidence
    assert len(read_reviews(engine)) == 10
    out = tmp_path / "overrides.json"
    out.write_text(json.dumps({"card_arrival": 0.5, "top_up_failed": None}))
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "SENTINEL_AUTO_REPLY_MIN_SCORE": "0.9", "SENTINEL_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "agents.cli", "auto-reply", "learn", "--out", str(out)], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"card_arrival": 0.5, "exchange_rate": None, "top_up_failed": None}
    assert "10 decisions read; 2 intents tightened" in " ".join(done.stderr.split())
    policy = AutoReplyPolicy.from_settings(Settings(auto_reply_overrides=out, auto_reply_min_score=0.9))
    assert not policy.allows("exchange_rate", 1.0, False)
    assert policy.allows("atm_support", 0.95, False)


@pytest.mark.integration
def test_auto_reply_learn_without_an_overrides_file_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SENTINEL_AUTO_REPLY_OVERRIDES"}
    done = subprocess.run([sys.executable, "-m", "agents.cli", "auto-reply", "learn"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "no overrides file" in done.stderr and "--out" in done.stderr
