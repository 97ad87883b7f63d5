"""Feedback from the desk: corrected intents (checked against the intent model's labels, stored with the
decision), the review counters per intent on the desk's /metrics, and `sentinel train intent --feedback`.

The desk runs in-process on a real embedded PostgreSQL; its replies wait in the outbox (``chat.outbound``
itself is covered by tests/test_desk_api.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from agents.desk import feedback, store
from agents.desk.app import create_app
from infra.settings import PROJECT_ROOT, Settings
from models.training.datasets import TextSplit
from models.training.feedback import merge_corrections
from schemas.tables import ChatMessage, ReplyDraft

LABELS = feedback.known_intents(Settings())


# -- units ------------------------------------------------------------------------------------------------
class FakeCorrections:
    """A fake row source: (text, corrected intent) pairs as ``corrected_intents`` yields them, oldest first."""

    def __init__(self, rows: list[tuple[str, str]]):
        self.rows = rows
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        return iter(self.rows)


def test_corrections_are_added_once_each_and_never_touch_the_held_out_splits():
    splits = {"train": TextSplit(["Where is my card?", "How do I top up?", "Card payment declined"],
                                 ["card_arrival", "top_up_failed", "declined_card_payment"]),
              "val": TextSplit(["Is there a fee?"], ["card_payment_fee_charged"]),
              "test": TextSplit(["My PIN is blocked"], ["pin_blocked"])}
    before = {part: (list(s.texts), list(s.labels)) for part, s in splits.items()}
    rows = FakeCorrections([
        ("still nothing!!", "card_arrival"),
        ("How do I  TOP UP?", "top_up_by_card_charge"),   # a banking77 training text (case, spaces): replaces it
        ("Still nothing!! ", "card_delivery_estimate"),   # the same text corrected again: the later one wins
        ("my pin is blocked", "pin_blocked"),             # a test text: left out
        ("is there a fee?", "card_payment_fee_charged"),  # a validation text: left out
        ("what now", "not_an_intent"),                    # not a label: skipped
        ("   ", "card_arrival"),                          # no text: skipped
    ])
    merged, report = merge_corrections(splits, rows, LABELS)
    assert list(zip(merged.texts, merged.labels)) == [
        ("How do I  TOP UP?", "top_up_by_card_charge"), ("Still nothing!! ", "card_delivery_estimate"),
        ("Where is my card?", "card_arrival"), ("Card payment declined", "declined_card_payment")]
    assert (report.read, report.added, report.replaced, report.superseded, report.held_out,
            report.unknown_intent) == (7, 2, 1, 1, 2, 2)
    assert {part: (s.texts, s.labels) for part, s in splits.items()} == before  # nothing changed in place
    assert "2 added" in report.summary()


def test_the_desk_offers_the_intent_models_labels(tmp_path):
    assert len(LABELS) == 77 and "card_arrival" in LABELS and "lost_or_stolen_card" in LABELS
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"id2label": {"1": "refund", "0": "greeting", "10": "zz"}}))
    assert feedback.known_intents(Settings(intent_model=str(folder))) == ["greeting", "refund", "zz"]
    # a hub id (not a folder here): the shipped model's labels
    assert feedback.known_intents(Settings(intent_model="someone/some-intent-model")) == LABELS


def samples(exposition: str, name: str) -> dict[tuple[str, str], float]:
    out = {}
    for m in re.finditer(rf'^{name}\{{action="(\w+)",intent="([^"]+)"\}} (\S+)$', exposition, re.M):
        out[(m.group(2), m.group(1))] = float(m.group(3))
    return out


def test_review_counters_start_at_zero_for_every_intent_and_action():
    counters = feedback.ReviewCounters(LABELS)
    values = samples(feedback.render().decode(), "sentinel_desk_reviews_total")
    expected = {(i, a) for i in [*LABELS, "unknown"] for a in feedback.ACTIONS}
    assert expected <= set(values)
    before = values[("unknown", "reject")]
    counters.count("<script>x</script>", "reject")  # outside the labels: bounded as unknown
    after = samples(feedback.render().decode(), "sentinel_desk_reviews_total")
    assert after[("unknown", "reject")] == before + 1
    assert not any("script" in intent for intent, _ in after)
    with pytest.raises(ValueError):
        counters.count("card_arrival", "auto")


# -- the desk on a real database ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def desk(engine):
    store.add_user(engine, "fay", "fay-password-1", "agent")
    with TestClient(create_app(Settings(database_url="postgresql://unused", kafka_bootstrap="unused:9092"),
                               engine=engine)) as client:
        token = client.post("/api/login", json={"username": "fay", "password": "fay-password-1"}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def add_draft(engine, message_id: str, intent: str = "card_arrival", text_: str = "Where is my card?") -> None:
    with engine.begin() as conn:
        conn.execute(insert(ChatMessage.__table__).values(
            id=message_id, conversation_id=f"c-{message_id}", text=text_, sentiment_label="neutral", negative=0.1,
            entities=[], kafka_partition=0, kafka_offset=0, event_time=datetime.now(UTC)))
        conn.execute(insert(ReplyDraft.__table__).values(
            message_id=message_id, conversation_id=f"c-{message_id}", intent=intent, intent_score=0.8,
            draft="Cards arrive within 3 to 7 working days.", escalate=False, escalation_reason=None,
            retrieved=[], generator="none"))


def counts(desk) -> dict[tuple[str, str], float]:
    r = desk.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return samples(r.text, "sentinel_desk_reviews_total")


def reviews(engine, message_id: str) -> list:
    with engine.connect() as conn:
        return list(conn.execute(text("select action, intent, corrected_intent from reply_reviews "
                                      "where message_id = :id order by id"), {"id": message_id}))


@pytest.mark.integration
def test_a_corrected_intent_must_be_one_the_model_knows(desk, engine):
    add_draft(engine, "fb-bad")
    for body in ({"intent": "card_arival"}, {"intent": "<b>card_arrival</b>"}, {"intent": " card_arrival"}):
        r = desk.post("/api/drafts/fb-bad/approve", json=body)
        assert r.status_code == 422, r.text
    assert desk.post("/api/drafts/fb-bad/reject", json={"reason": "no", "intent": "nope"}).status_code == 422
    assert store.get_draft(engine, "fb-bad").status == "pending" and reviews(engine, "fb-bad") == []
    r = desk.post("/api/drafts/fb-bad/reject", json={"reason": "wrong topic", "intent": "lost_or_stolen_card"})
    assert r.status_code == 200, r.text
    assert [tuple(x) for x in reviews(engine, "fb-bad")] == [("reject", "card_arrival", "lost_or_stolen_card")]


@pytest.mark.integration
def test_each_decision_is_counted_once_by_the_drafts_intent(desk, engine):
    for message_id, intent in [("fb-a", "card_arrival"), ("fb-e", "card_arrival"), ("fb-r", "exchange_rate"),
                               ("fb-u", "an_intent_of_another_model")]:
        add_draft(engine, message_id, intent)
    before = counts(desk)
    assert desk.post("/api/drafts/fb-a/approve", json={"intent": "card_delivery_estimate"}).status_code == 200
    assert desk.post("/api/drafts/fb-a/approve").json()["decided"] is False  # again: sent once, counted once
    assert desk.post("/api/drafts/fb-e/approve", json={"text": "It is on its way."}).status_code == 200
    assert desk.post("/api/drafts/fb-r/reject", json={"reason": "wrong rate"}).status_code == 200
    assert desk.post("/api/drafts/fb-r/reject", json={"reason": "again"}).json()["decided"] is False
    assert desk.post("/api/drafts/fb-u/reject", json={"reason": "other model"}).status_code == 200
    after = counts(desk)
    changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert changed == {("card_arrival", "approve"): 1, ("card_arrival", "edit"): 1, ("exchange_rate", "reject"): 1,
                       ("unknown", "reject"): 1}
    assert [tuple(x) for x in reviews(engine, "fb-a")] == [("approve", "card_arrival", "card_delivery_estimate")]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.mark.integration
def test_the_review_queue_offers_the_labels_in_one_select_per_card(desk, engine):
    add_draft(engine, "fb-page", "card_arrival", "<script>window.x=1</script> card?")
    browser = TestClient(desk.app)
    browser.post("/login", data={"username": "fay", "password": "fay-password-1",
                                 "csrf_token": csrf_of(browser.get("/login").text)})
    page = browser.get("/drafts").text
    card = page[page.index('data-message-id="fb-page"'):]
    card = card[:card.index("</article>")]
    selects = re.findall(r'<select name="intent"[^>]*>(.*?)</select>', card, re.S)
    assert len(selects) == 1 and card.count("<form") - card.count('class="inline"') == 1  # one control, one form
    assert 'formaction="/drafts/fb-page/reject"' in card  # reject is the same form's other button
    for options in selects:
        assert re.findall(r"<option>([^<]+)</option>", options) == LABELS
        assert '<option value="" selected>card_arrival (as read)</option>' in options
    form = {"csrf_token": csrf_of(page), "text": "Cards arrive within 3 to 7 working days."}
    with_reason = browser.post("/drafts/fb-page/approve", data={**form, "reason": "wrong answer"})
    assert with_reason.status_code == 422 and "press Reject" in with_reason.text  # Enter in the reason never sends
    refused = browser.post("/drafts/fb-page/approve", data={**form, "intent": "made_up"}, follow_redirects=False)
    assert refused.status_code == 422 and store.get_draft(engine, "fb-page").status == "pending"
    sent = browser.post("/drafts/fb-page/approve", data={**form, "intent": "card_linking"}, follow_redirects=False)
    assert sent.status_code == 303
    assert [tuple(x) for x in reviews(engine, "fb-page")] == [("approve", "card_arrival", "card_linking")]


# -- sentinel train intent --feedback ------------------------------------------------------------------------
def sentinel(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=PROJECT_ROOT, env={**os.environ, "SENTINEL_STATE_DIR": env.pop("state"), **env})


def test_train_feedback_says_so_in_one_line_when_the_database_is_unreachable(tmp_path, data_dir):
    r = sentinel("train", "intent", "--feedback", "--data", str(data_dir), "--out", str(tmp_path / "out"),
                 "--epochs", "1", "--limit", "8", state=str(tmp_path / "state"),
                 DATABASE_URL="postgresql+psycopg://u:secret@127.0.0.1:1/nothing")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: cannot reach the database"), r.stderr
    assert "secret" not in r.stderr and not (tmp_path / "out").exists()
    r = sentinel("train", "sentiment", "--feedback", "--data", str(data_dir), state=str(tmp_path / "state"))
    assert r.returncode == 2 and "--feedback is for the intent model" in r.stderr


@pytest.mark.integration
def test_train_intent_feedback_adds_the_corrected_intents(tmp_path, data_dir, engine, desk):
    with engine.begin() as conn:
        conn.execute(text("delete from reply_reviews"))  # only this test's decisions
    add_draft(engine, "fb-train-1", "card_arrival", "still nothing arrived, what now??")
    add_draft(engine, "fb-train-2", "card_arrival", "the app shows my card as frozen")
    assert desk.post("/api/drafts/fb-train-1/approve", json={"intent": "card_delivery_estimate"}).status_code == 200
    r = desk.post("/api/drafts/fb-train-2/reject", json={"reason": "x", "intent": "card_not_working"})
    assert r.status_code == 200
    assert feedback.corrected_intents(engine) == [
        feedback.Correction("still nothing arrived, what now??", "card_delivery_estimate"),
        feedback.Correction("the app shows my card as frozen", "card_not_working")]
    out = tmp_path / "intent"
    r = sentinel("train", "intent", "--feedback", "--data", str(data_dir), "--out", str(out), "--epochs", "1",
                 "--limit", "16", "--batch-size", "8", state=str(tmp_path / "state"),
                 DATABASE_URL=engine.url.render_as_string(hide_password=False))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 corrected intents read, 2 added" in r.stderr
    meta = json.loads((out / "sentinel.json").read_text())
    assert "desk feedback: 2 corrected intents from reply_reviews (0 replacing banking77 rows)" in meta["train_sources"]
    assert meta["train_examples"] == 16 and meta["labels"] == json.loads(
        (data_dir / "banking77" / "categories.json").read_text())
