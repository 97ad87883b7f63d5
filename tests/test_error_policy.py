"""The error policy (agents/errors.py): its default table is the stream core's behaviour, and an
override (a mapping, the setting, a callable) changes what a failure gets where it is caught."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka.errors import KafkaTimeoutError
from sqlalchemy.exc import IntegrityError, OperationalError

from agents import dead_letters, errors
from agents.alerts.delivery import AlertDelivery
from agents.app import produce
from agents.errors import Action, ClusterReset, ErrorPolicy, Failure, Stage, classify
from agents.health import Health
from agents.loop import AgentLoop, Lane
from agents.news import NewsPipeline
from agents.sensors import Sensor
from agents.sinks import PostgresSink
from infra.settings import Settings
from models.process import ModelsUnavailable
from schemas.events import InvalidEvent
from tests.test_stream_core import FakeAnalyzer, FakeApp, FakeTopic, news, received


def loop_without_a_database(policy: ErrorPolicy | None = None) -> AgentLoop:
    """A news loop that prepares batches only (parse, models, rows): no database, no broker."""
    app = FakeApp()
    return AgentLoop(app, NewsPipeline(FakeAnalyzer(), "fake-1"), PostgresSink(None, "news", sensor=Sensor()),
                     Lane(ThreadPoolExecutor(1), ThreadPoolExecutor(1)),
                     AlertDelivery(None, app.topic("alerts"), None, redeliver_after=30), Health(), max_batch=64,
                     max_wait=0.1, model_timeout=30, sensor=Sensor(), policy=policy)


OUTAGE = OperationalError("select 1", {}, Exception("connection refused"))
REJECTED = IntegrityError("insert", {}, Exception("duplicate key"))


@pytest.mark.parametrize(("exc", "stage", "failure", "action"), [
    (InvalidEvent("invalid_json", "not JSON"), Stage.PARSE, Failure.INVALID_INPUT, Action.DEAD_LETTER),
    (KeyError("id"), Stage.PARSE, Failure.PARSE_ERROR, Action.DEAD_LETTER),
    (RuntimeError("the model fails"), Stage.MODELS, Failure.MODEL_ERROR, Action.DEAD_LETTER),
    (ModelsUnavailable("cannot start"), Stage.MODELS, Failure.MODELS_UNAVAILABLE, Action.RETRY),
    (TypeError("not bytes"), Stage.BUILD, Failure.ENCODE_ERROR, Action.DEAD_LETTER),
    (REJECTED, Stage.DATABASE, Failure.DB_REJECTED, Action.DEAD_LETTER),
    (OUTAGE, Stage.DATABASE, Failure.DB_OUTAGE, Action.RETRY),
    (ValueError("a bug in the work"), Stage.DATABASE, Failure.LOOP_BUG, Action.CRASH),
    (KafkaTimeoutError(), Stage.PRODUCE, Failure.BROKER_ERROR, Action.CRASH),
    (ValueError("a bug"), Stage.AFTER_COMMIT, Failure.AFTER_COMMIT, Action.DEGRADE),
    (ValueError("a bug"), Stage.LOOP, Failure.LOOP_BUG, Action.CRASH),
    (ClusterReset("new cluster id"), Stage.LOOP, Failure.CLUSTER_RESET, Action.CRASH),
])
def test_the_default_policy_is_the_loops_behaviour(exc, stage, failure, action):
    assert classify(exc, stage) is failure
    assert errors.default.decide(exc, stage) == (failure, action)
    assert ErrorPolicy().action(failure) is action


def test_model_timeouts_degrade_by_default():
    assert errors.default.action(Failure.MODEL_TIMEOUT) is Action.DEGRADE


def _parser_with_a_bug(raw):
    raise KeyError("id")


def test_an_override_turns_a_parser_bug_from_a_dead_letter_into_a_crash():
    messages = received([news(0)])
    valid, dead = dead_letters.parse_batch(messages, _parser_with_a_bug, "news")
    assert valid == [] and [row["reason"] for row in dead] == ["parse_error"]
    strict = ErrorPolicy({"parse_error": "crash"})
    with pytest.raises(KeyError):
        dead_letters.parse_batch(messages, _parser_with_a_bug, "news", policy=strict)
    # bad input still goes to the dead letters
    valid, dead = dead_letters.parse_batch(received([b"{not json"]), NewsPipeline.parse, "news", policy=strict)
    assert [row["reason"] for row in dead] == ["invalid_json"]


def test_an_override_from_the_settings_stops_retrying_a_database_outage():
    policy = ErrorPolicy.from_settings(Settings(error_policy="db_outage=crash, parse_error=crash"))
    assert policy.action(Failure.DB_OUTAGE) is Action.CRASH and policy.action(Failure.PARSE_ERROR) is Action.CRASH
    calls = []

    def work():
        calls.append(1)
        raise OUTAGE

    sink = PostgresSink(None, "news", retry_max=0.01, policy=policy, sensor=Sensor())
    with pytest.raises(OperationalError):
        sink.retrying(work)
    assert len(calls) == 1  # raised at once, not retried


def test_a_callable_override_sees_the_failure_and_its_exception():
    seen = []

    def decide(failure, exc):
        seen.append((failure, type(exc).__name__))
        return "crash" if failure is Failure.MODEL_ERROR else None

    policy = ErrorPolicy(decide)
    assert policy.decide(RuntimeError("x"), Stage.MODELS) == (Failure.MODEL_ERROR, Action.CRASH)
    assert policy.decide(OUTAGE, Stage.DATABASE) == (Failure.DB_OUTAGE, Action.RETRY)  # None: the table's
    assert seen == [(Failure.MODEL_ERROR, "RuntimeError"), (Failure.DB_OUTAGE, "OperationalError")]


def test_an_override_the_failure_cannot_take_is_refused():
    with pytest.raises(ValueError, match="db_rejected cannot be handled by retry"):
        ErrorPolicy({"db_rejected": "retry"})
    with pytest.raises(ValueError):
        ErrorPolicy({"no_such_failure": "crash"})
    with pytest.raises(ValueError):
        ErrorPolicy.parse("parse_error")
    with pytest.raises(ValueError):
        ErrorPolicy(lambda failure, exc: "degrade").action(Failure.LOOP_BUG)


def test_a_model_error_crashes_the_loop_when_the_policy_says_so():
    batch = [news(0), news(1, "BOOM Corp collapses")]
    with pytest.raises(RuntimeError, match="BOOM"):
        asyncio.run(loop_without_a_database(ErrorPolicy({"model_error": "crash"})).prepare(received(batch)))
    prepared = asyncio.run(loop_without_a_database().prepare(received(batch)))
    assert [row["reason"] for row in prepared.dead] == ["model_error"]


class FakeFlakyTopic(FakeTopic):
    """A topic whose first send fails as a broker that gave up would."""

    def __init__(self, name: str):
        super().__init__(name)
        self.failures = 1

    async def send(self, key, value):
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError()
        return await super().send(key, value)


def test_a_broker_error_on_produce_crashes_by_default_and_is_sent_again_when_retried():
    topic = FakeFlakyTopic("news.enriched")
    with pytest.raises(KafkaTimeoutError):
        asyncio.run(produce(topic, [(b"k", b"v")], "news", Sensor()))
    topic = FakeFlakyTopic("news.enriched")
    asyncio.run(produce(topic, [(b"k", b"v")], "news", Sensor(), ErrorPolicy({"broker_error": "retry"})))
    assert topic.sent == [(b"k", b"v")]
