"""The review queue's order, counts, filters and claims on a real (embedded) PostgreSQL: escalated drafts
first, then the longest waiting; a draft someone is editing cannot be decided by another reviewer unless
they take it over, and a decision from a page read before a take-over is refused (optimistic concurrency)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from agents.desk import store
from agents.desk.store import DecisionError, DraftFilter, User
from tests.test_desk_api import add_draft

pytestmark = pytest.mark.integration

ANN, BOB = User(1, "ann", "agent"), User(2, "bob", "agent")


@pytest.fixture
def queue(engine):
    with engine.begin() as conn:
        conn.execute(text("truncate chat_messages, reply_drafts, reply_reviews, outbound_replies, outbox cascade"))
    return engine


def set_row(engine, message_id: str, waited_min: float | None = None, **message):
    """Backdate a draft's arrival and set its message's columns (channel, customer_id)."""
    with engine.begin() as conn:
        if waited_min is not None:
            conn.execute(text("update reply_drafts set created_at = now() - make_interval(mins => :m) "
                              "where message_id = :id"), {"m": waited_min, "id": message_id})
        for column, value in message.items():
            assert column in ("channel", "customer_id")
            conn.execute(text(f"update chat_messages set {column} = :v where id = :id"), {"v": value, "id": message_id})


def ids(rows) -> list[str]:
    return [r.message_id for r in rows]


def test_pending_drafts_come_escalated_first_then_longest_waiting(queue):
    for message_id, waited, escalate in [("new", 1, False), ("old", 30, False), ("esc-new", 2, True),
                                         ("esc-old", 10, True), ("mid", 12, False)]:
        add_draft(queue, message_id, f"conv-{message_id}", escalate=escalate)
        set_row(queue, message_id, waited)
    assert ids(store.list_drafts(queue)) == ["esc-old", "esc-new", "old", "mid", "new"]
    assert ids(store.list_drafts(queue, escalated=True)) == ["esc-old", "esc-new"]
    store.reject(queue, "mid", ANN, "wrong")
    assert store.count_drafts(queue) == {"pending": 4, "sent": 0, "rejected": 1}
    assert store.count_drafts(queue, DraftFilter(escalated=True)) == {"pending": 2, "sent": 0, "rejected": 0}


def test_filters_by_intent_channel_and_conversation_or_customer_id(queue):
    add_draft(queue, "m1", "conv-a1", intent="card_arrival")
    add_draft(queue, "m2", "conv-b2", intent="lost_or_stolen_card")
    add_draft(queue, "m3", "Conv_X", intent="card_arrival")
    set_row(queue, "m1", channel="web", customer_id="cust-7")
    set_row(queue, "m2", channel="app", customer_id="cust-8")
    set_row(queue, "m3", channel="web", customer_id="zed")
    assert ids(store.list_drafts(queue, where=DraftFilter(intent="card_arrival"))) == ["m1", "m3"]
    assert ids(store.list_drafts(queue, where=DraftFilter(channel="app"))) == ["m2"]
    assert ids(store.list_drafts(queue, where=DraftFilter(intent="card_arrival", channel="web", search="CONV-A"))) == ["m1"]
    assert ids(store.list_drafts(queue, where=DraftFilter(search="cust-8"))) == ["m2"]  # a customer id
    # LIKE's wildcards in a search are the characters themselves
    assert ids(store.list_drafts(queue, where=DraftFilter(search="conv_"))) == ["m3"]
    assert ids(store.list_drafts(queue, where=DraftFilter(search="%"))) == []
    assert store.count_drafts(queue, DraftFilter(channel="web")) == {"pending": 2, "sent": 0, "rejected": 0}
    assert store.channels(queue) == ["app", "web"]


def test_a_claimed_draft_is_refused_to_others_until_taken_over(queue):
    add_draft(queue, "c1", "conv-c1")
    mine = store.claim(queue, "c1", ANN)
    assert mine.granted and mine.editor == "ann" and mine.version == 0
    assert store.get_draft(queue, "c1").editor == "ann"
    theirs = store.claim(queue, "c1", BOB)
    assert not theirs.granted and theirs.editor == "ann"  # shown "being edited by ann"
    with pytest.raises(DecisionError, match="ann is editing") as refused:
        store.approve(queue, "c1", BOB, "Bob's text", version=0)
    assert refused.value.code == 409
    with pytest.raises(DecisionError, match="ann is editing"):
        store.reject(queue, "c1", BOB, "bad draft")
    assert store.get_draft(queue, "c1").status == "pending"
    # an explicit take-over moves the version: ann's page, read at version 0, can no longer decide it
    taken = store.claim(queue, "c1", BOB, take_over=True)
    assert taken.granted and taken.editor == "bob" and taken.version == 1
    with pytest.raises(DecisionError, match="bob is editing"):
        store.approve(queue, "c1", ANN, "Ann's late text", version=0)
    store.release(queue, "c1", BOB)
    with pytest.raises(DecisionError, match="changed since you opened it") as stale:
        store.approve(queue, "c1", ANN, "Ann's late text", version=0)
    assert stale.value.code == 409 and store.get_draft(queue, "c1").status == "pending"
    reply, decided = store.approve(queue, "c1", ANN, "Ann's text, read again", version=1)
    assert decided and reply.text == "Ann's text, read again"
    after = store.get_draft(queue, "c1")
    assert (after.status, after.editor, after.version) == ("sent", None, 2)  # a decision ends the claim


def test_a_claim_lapses_and_renews(queue):
    add_draft(queue, "c2", "conv-c2")
    store.claim(queue, "c2", ANN)
    with queue.begin() as conn:
        conn.execute(text("update reply_drafts set claimed_at = now() - interval '10 minutes' where message_id = 'c2'"))
    assert store.get_draft(queue, "c2", claim_ttl=300).editor is None  # lapsed: nobody's
    assert store.get_draft(queue, "c2", claim_ttl=3600).editor == "ann"
    lapsed = store.claim(queue, "c2", BOB)  # a lapsed claim passes without a take-over, and without a new version
    assert lapsed.granted and lapsed.version == 0
    renewed = store.claim(queue, "c2", BOB)
    assert renewed.granted and renewed.since > lapsed.since and renewed.version == 0
    assert store.reject(queue, "c2", BOB, "wrong answer", version=0)
    with pytest.raises(DecisionError, match="already rejected"):
        store.claim(queue, "c2", ANN)


def test_release_frees_the_draft_and_leaves_others_claims_alone(queue):
    add_draft(queue, "c3", "conv-c3")
    store.claim(queue, "c3", ANN)
    assert store.release(queue, "c3", BOB).editor == "ann"  # not bob's to release
    assert store.release(queue, "c3", ANN).editor is None
    _, decided = store.approve(queue, "c3", BOB, version=0)
    assert decided


def test_sentiment_toward_the_company_is_preferred_to_the_articles(engine):
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from schemas.tables import ArticleKey, NewsArticle

    when = datetime(2026, 3, 2, 12, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text("delete from news_articles where id like 'toward-%'"))
        for i in (1, 2):
            conn.execute(insert(NewsArticle.__table__).values(
                id=f"toward-{i}", text="t", sentiment_label="positive", sentiment_score=0.8, negative=0.1,
                neutral=0.1, positive=0.8, model_version="m", kafka_partition=0, kafka_offset=i, event_time=when,
                tickers=[]))
        # article 1 is good news overall, bad news for acme
        conn.execute(insert(ArticleKey.__table__).values(article_id="toward-1", key="acme", event_time=when,
                                                         negative=0.7, sentiment=-0.6, is_negative=True))
    readings = store.story_sentiments(engine, "acme", ["toward-1", "toward-2", "missing"])
    assert readings["toward-1"] == {"label": "negative", "score": -0.6, "toward": True}
    assert readings["toward-2"]["label"] == "positive" and readings["toward-2"]["toward"] is False
    assert "missing" not in readings
    assert store.reading_label(0.1, 0.05) == "neutral"  # negative 0.1, positive 0.15, neutral 0.75
    assert store.reading_label(0.2, 0.5) == "positive"  # positive 0.7


def test_waiting_is_shown_from_the_drafts_arrival(queue):
    from agents.desk.present import waiting_tag

    add_draft(queue, "w1", "conv-w1")
    set_row(queue, "w1", waited_min=75)
    row = store.get_draft(queue, "w1")
    tag = str(waiting_tag(row.created_at, store.now()))
    assert ">1 h 15 min<" in tag and 'class="since"' in tag
    assert str(waiting_tag(row.created_at, row.created_at + timedelta(seconds=42))).endswith(">42 s</time>")
