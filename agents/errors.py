"""The error policy: what the worker does about each kind of failure, in one place.

Every place that catches a failure (the loop's parse, models, build, after-commit work and
commit stage; the sink's retries; produce; the cluster check) names where it happened, and the
policy answers with an action:

- ``dead_letter``: the event goes to the dead letters with its reason; the rest of its batch goes on;
- ``retry``: wait with back-off and try again, for as long as it takes (the agent pauses meanwhile);
- ``degrade``: say so on ``/health``, log it and go on;
- ``crash``: stop the worker; the held batches stay unacknowledged and the restart replays them.

The default table (``DEFAULT``) is the behaviour described in ``agents/loop.py``:

=====================  ===========  =======================================================
failure                action       what it is
=====================  ===========  =======================================================
``invalid_input``      dead_letter  the edge's validation refused the event
``parse_error``        dead_letter  a parser bug on one event
``model_error``        dead_letter  the models fail on one event alone
``encode_error``       dead_letter  its rows or records cannot be built or encoded
``db_rejected``        dead_letter  the database refuses its rows (a constraint, a bad value)
``db_outage``          retry        any other database error (connection, statement timeout)
``models_unavailable`` retry        the model process cannot be started (``ModelsUnavailable``)
``model_timeout``      degrade      a model batch past ``SENTINEL_MODEL_TIMEOUT`` (waited on)
``after_commit``       degrade      the work after a commit failed (the rows are stored)
``broker_error``       crash        a send the Kafka client gave up on after its own retries
``loop_bug``           crash        anything else that reaches the commit stage
``cluster_reset``      crash        the Kafka cluster lost its data (``worker.check_cluster``)
=====================  ===========  =======================================================

Each failure allows its default action and ``crash``, and ``broker_error`` allows ``retry`` too
(produce sends again with back-off). A deployment overrides the table with
``SENTINEL_ERROR_POLICY`` (``"parse_error=crash,db_rejected=crash"``: a strict worker for a
staging feed), or in code with ``ErrorPolicy(mapping)`` or ``ErrorPolicy(callable)``: the
callable gets ``(failure, exception)`` and returns an action, or None for the table's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from models.process import ModelsUnavailable
from schemas.events import InvalidEvent


class Action(StrEnum):
    DEAD_LETTER = "dead_letter"
    RETRY = "retry"
    DEGRADE = "degrade"
    CRASH = "crash"


class Failure(StrEnum):
    INVALID_INPUT = "invalid_input"
    PARSE_ERROR = "parse_error"
    MODEL_ERROR = "model_error"
    ENCODE_ERROR = "encode_error"
    DB_REJECTED = "db_rejected"
    DB_OUTAGE = "db_outage"
    MODELS_UNAVAILABLE = "models_unavailable"
    MODEL_TIMEOUT = "model_timeout"
    AFTER_COMMIT = "after_commit"
    BROKER_ERROR = "broker_error"
    LOOP_BUG = "loop_bug"
    CLUSTER_RESET = "cluster_reset"


class Stage(StrEnum):
    """Where a failure was caught."""

    PARSE = "parse"
    MODELS = "models"
    BUILD = "build"
    DATABASE = "database"
    PRODUCE = "produce"
    AFTER_COMMIT = "after_commit"
    LOOP = "loop"


class ClusterReset(RuntimeError):
    """The Kafka cluster the worker started on is gone (a new cluster answers at the same address)."""


# Errors about a row's content (bad value, constraint): the rest of the batch is fine.
CONTENT_ERRORS = (DataError, IntegrityError)

DEFAULT: Mapping[Failure, Action] = {
    Failure.INVALID_INPUT: Action.DEAD_LETTER,
    Failure.PARSE_ERROR: Action.DEAD_LETTER,
    Failure.MODEL_ERROR: Action.DEAD_LETTER,
    Failure.ENCODE_ERROR: Action.DEAD_LETTER,
    Failure.DB_REJECTED: Action.DEAD_LETTER,
    Failure.DB_OUTAGE: Action.RETRY,
    Failure.MODELS_UNAVAILABLE: Action.RETRY,
    Failure.MODEL_TIMEOUT: Action.DEGRADE,
    Failure.AFTER_COMMIT: Action.DEGRADE,
    Failure.BROKER_ERROR: Action.CRASH,
    Failure.LOOP_BUG: Action.CRASH,
    Failure.CLUSTER_RESET: Action.CRASH,
}

# What each place can do: its default, crash, and a produce retried with back-off.
ALLOWED: Mapping[Failure, frozenset[Action]] = {
    failure: frozenset({action, Action.CRASH} | ({Action.RETRY} if failure is Failure.BROKER_ERROR else set()))
    for failure, action in DEFAULT.items()}


def _kafka_error(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaError
    from faust.exceptions import ProducerSendError

    return isinstance(exc, KafkaError | ProducerSendError)


def classify(exc: BaseException, stage: Stage) -> Failure:
    """The kind of failure ``exc`` is, caught at ``stage``."""
    if isinstance(exc, ClusterReset):
        return Failure.CLUSTER_RESET
    if stage is Stage.PARSE:
        return Failure.INVALID_INPUT if isinstance(exc, InvalidEvent) else Failure.PARSE_ERROR
    if stage is Stage.MODELS:
        return Failure.MODELS_UNAVAILABLE if isinstance(exc, ModelsUnavailable) else Failure.MODEL_ERROR
    if stage is Stage.BUILD:
        return Failure.ENCODE_ERROR
    if stage is Stage.DATABASE and isinstance(exc, SQLAlchemyError):
        return Failure.DB_REJECTED if isinstance(exc, CONTENT_ERRORS) else Failure.DB_OUTAGE
    if stage is Stage.PRODUCE and _kafka_error(exc):
        return Failure.BROKER_ERROR
    if stage is Stage.AFTER_COMMIT:
        return Failure.AFTER_COMMIT
    return Failure.LOOP_BUG


Override = Mapping[str, str] | Callable[[Failure, BaseException | None], "Action | str | None"]


class ErrorPolicy:
    """The default table, with a deployment's override (a mapping of failure to action, or a callable)."""

    def __init__(self, override: Override | None = None):
        self.table: dict[Failure, Action] = dict(DEFAULT)
        self.callback: Callable | None = None
        if callable(override):
            self.callback = override
        elif override:
            for failure, action in override.items():
                failure = Failure(failure)
                self.table[failure] = _allowed(failure, action)

    @classmethod
    def parse(cls, text: str) -> ErrorPolicy:
        """``"failure=action,..."`` (``SENTINEL_ERROR_POLICY``); empty: the default table."""
        pairs = [item.split("=", 1) for item in text.replace(" ", "").split(",") if item]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"error policy {text!r}: write failure=action, separated by commas")
        return cls({failure: action for failure, action in pairs})

    @classmethod
    def from_settings(cls, settings) -> ErrorPolicy:
        return cls.parse(settings.error_policy)

    def action(self, failure: Failure, exc: BaseException | None = None) -> Action:
        """What to do about ``failure`` (``exc``: the exception, for a callable override)."""
        if self.callback is not None:
            chosen = self.callback(failure, exc)
            if chosen is not None:
                return _allowed(failure, chosen)
        return self.table[failure]

    def decide(self, exc: BaseException, stage: Stage) -> tuple[Failure, Action]:
        """The failure ``exc`` is at ``stage``, and what to do about it."""
        failure = classify(exc, stage)
        return failure, self.action(failure, exc)


def _allowed(failure: Failure, action) -> Action:
    action = Action(action)
    if action not in ALLOWED[failure]:
        raise ValueError(f"error policy: {failure} cannot be handled by {action} "
                         f"(choose {' or '.join(sorted(ALLOWED[failure]))})")
    return action


default = ErrorPolicy()  # what a component built without a policy asks
