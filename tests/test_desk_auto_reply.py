"""Auto-reply in the chat agent's loop, on a real PostgreSQL with the stream-core tests' fake models and
fake broker (named as such): a confident, non-escalated draft goes to chat.outbound by itself and is
stored as sent; an escalated one waits; off sends nothing; a replay and a later desk approval send
nothing new."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from agents.chat import ChatPipeline
from agents.desk import store
from agents.desk.auto_reply import AutoReplyPolicy
from models.chat import ChatModels
from tests.test_stream_core import (  # the `engine` fixture is tests/conftest.py's
    FakeAnalyzer,
    FakeComposer,
    FakeIntents,
    clear,
    make_loop,
    process,
    received,
)


def chat_loop(engine, policy):
    return make_loop(engine, ChatPipeline(ChatModels(FakeAnalyzer(), FakeIntents(), FakeComposer()), "fake-generator",
                                          policy))


def chat(i: int, text_: str) -> bytes:
    return json.dumps({"id": f"c{i}", "conversation_id": f"conv{i}", "text": text_}).encode()


def clear_desk(engine) -> None:
    clear(engine)
    with engine.begin() as conn:
        conn.execute(text("truncate reply_reviews, outbound_replies cascade"))


def test_confident_unescalated_drafts_are_sent_by_themselves(engine):
    clear_desk(engine)
    loop, app = chat_loop(engine, AutoReplyPolicy(True, 0.9))  # FakeIntents: card_arrival at 0.97
    messages = received([chat(0, "where is my card"), chat(1, "this is bad, really bad")], "chat")
    process(loop, messages)
    sent = app.topics["chat.outbound"].sent
    assert len(sent) == 1 and sent[0][0] == b"conv0"
    assert json.loads(sent[0][1]) == {"message_id": "c0", "conversation_id": "conv0", "sent_by": "auto",
                                      "auto": True, "edited": False, "text": "Thank you. (16 characters)"}
    with engine.connect() as conn:
        status = dict(conn.execute(text("select message_id, status from reply_drafts")).all())
        assert status == {"c0": "sent", "c1": "pending"}  # c1 is escalated (negative customer): a person decides
        assert conn.execute(text("select message_id, action, reviewer from reply_reviews")).all() == \
            [("c0", "auto", "auto")]
        assert conn.execute(text("select message_id, auto, produced_at is not null from outbound_replies")).all() \
            == [("c0", True, True)]

    process(loop, messages)  # a replay (crash before the offsets were committed) stores nothing new
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from outbound_replies")).scalar() == 1
        assert conn.execute(text("select count(*) from reply_reviews")).scalar() == 1

    with pytest.raises(store.DecisionError) as late:  # a person's edit of a reply already sent is refused
        store.approve(engine, "c0", store.User(1, "ann", "agent"), "A different text")
    assert late.value.code == 409 and late.value.sent_text == "Thank you. (16 characters)"
    reply, decided = store.approve(engine, "c0", store.User(1, "ann", "agent"))
    assert not decided and reply.auto and reply.produced and reply.text == "Thank you. (16 characters)"
    with engine.connect() as conn:  # a person cannot send it twice: nothing waits in the outbox
        assert conn.execute(text("select count(*) from outbox where produced_at is null")).scalar() == 0


def test_auto_reply_off_or_below_the_threshold_sends_nothing(engine):
    for policy in (AutoReplyPolicy(False, 0.9), AutoReplyPolicy(True, 0.98), None):
        clear_desk(engine)
        loop, app = chat_loop(engine, policy)
        process(loop, received([chat(0, "where is my card")], "chat"))
        assert "chat.outbound" not in app.topics or app.topics["chat.outbound"].sent == []
        with engine.connect() as conn:
            assert conn.execute(text("select status from reply_drafts")).scalars().all() == ["pending"]
            assert conn.execute(text("select count(*) from outbound_replies")).scalar() == 0
