"""The agent loop: one stream core for every agent.

    take → parse (dead letters) → models in the agent's own lane → rows and records
         → commit stage: one transaction → after-commit work → produce → acknowledge

A batch is taken with ``agents.take.take_events`` (Faust's, with the wait counted from when the batch
opened) and held (``CommitStage.hold``) so
Faust cannot acknowledge it before its rows are committed and its outputs produced;
while the commit stage stores one batch, the models already run on the next.

No event's content can stop the loop: a parser or model failure, rows or records
that cannot be built or encoded, rows the database refuses — each sends that one
event to the dead letters with its reason while the rest of the batch goes on.
Infrastructure failures (database down, models unavailable) pause and retry instead.
Each ``except`` here asks the error policy (``agents/errors.py``) what to do; the
default policy is what this paragraph says.

What the loop reports (metrics, ``/health``) goes to its sensor (``agents/sensors.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass

import faust

from agents import dead_letters, errors, outbox, sensors
from agents.alerts.delivery import AlertDelivery
from agents.app import produce
from agents.commit_stage import CommitStage
from agents.dead_letters import dead_letter_row
from agents.errors import Action, Stage
from agents.health import Health
from agents.pipeline import Built, Pipeline, Prepared, Received
from agents.sinks import Batch, PostgresSink
from agents.take import take_events
from infra.failpoints import failpoint
from models.process import ModelsUnavailable
from schemas import topics
from schemas.tables import DeadLetter

log = logging.getLogger(__name__)


def record_lag(app: faust.App, events, sensor: sensors.Sensor | None = None) -> None:
    """Messages behind the end of each partition in the batch (the end as the consumer last saw it)."""
    sensor = sensor or sensors.default
    newest: dict = {}
    for event in events:
        tp = event.message.tp
        newest[tp] = max(newest.get(tp, -1), event.message.offset)
    for tp, offset in newest.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            sensor.on_lag(tp.topic, tp.partition, max(0, highwater - offset - 1))


@dataclass
class Failed:
    """A model result that is an error (the event alone made the models fail)."""

    error: BaseException


@dataclass
class Lane:
    """Where an agent's work runs: its own model thread and its own database thread, so one
    agent's slow batch (a generation, a long transaction) never queues another agent's."""

    models: Executor
    db: Executor


class AgentLoop:
    def __init__(self, app: faust.App, pipeline: Pipeline, sink: PostgresSink, lane: Lane,
                 alerts: AlertDelivery, health: Health, *, max_batch: int, max_wait: float,
                 model_timeout: float, outbox_lease: float = 30.0, sensor: sensors.Sensor | None = None,
                 policy: errors.ErrorPolicy | None = None):
        """``health``: what ``/health`` reads; ``sensor``: where the loop reports (default: the Prometheus
        sensor and ``health``; the worker's delegate holds both); ``policy``: what each failure gets
        (default: ``agents.errors.default``)."""
        self.app = app
        self.pipeline = pipeline
        self.sink = sink
        self.lane = lane
        self.alerts = alerts
        self.health = health
        self.sensor = sensors.resolve(sensor, health)
        self.policy = policy or errors.default
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.model_timeout = model_timeout
        self.outbox_lease = outbox_lease  # the sweep sends this loop's records only if it has not by then
        self.output_topic = app.topic(pipeline.output_topic, partitions=app.conf.topic_partitions)
        self.dead_topic = app.topic(topics.DEAD_LETTERS.name, partitions=1)
        self._other_topics: dict[str, faust.TopicT] = {}

    def _topic(self, name: str):
        """An output topic other than the pipeline's own (made once, not per batch)."""
        if name not in self._other_topics:
            self._other_topics[name] = self.app.topic(name, partitions=self.app.conf.topic_partitions)
        return self._other_topics[name]

    @property
    def agent(self) -> str:
        return self.pipeline.agent

    async def run(self, stream) -> None:
        stage = CommitStage(self.app, self.agent, policy=self.policy)
        try:
            async for events in take_events(stream, self.max_batch, self.max_wait):
                stage.hold(events)
                started = asyncio.Event()  # set once the models take this batch (or it needs none)
                prepared = asyncio.ensure_future(self.prepare([Received.from_event(e) for e in events], started))
                record_lag(self.app, events, self.sensor)
                await stage.submit(events, functools.partial(self._commit_prepared, prepared))
                # The next batch is taken once the models have taken this one: in a backlog it is queued
                # before they finish, and at most one batch waits for them, so what arrives meanwhile
                # gathers into one batch instead of a queue of small ones.
                await started.wait()
        except Exception as exc:  # noqa: BLE001 - a bug: held events stay unacknowledged, the restart replays them
            await stage.fail(exc)

    async def _commit_prepared(self, prepared: asyncio.Future) -> None:
        await self.commit(await prepared)

    # -- prepare: parse, models, rows (on the agent; the models in its lane) ----------------------------
    async def prepare(self, messages: list[Received], started: asyncio.Event | None = None) -> Prepared:
        """Parse, models, rows. ``started`` is set when the models take the batch, or when it is done."""
        started = started or asyncio.Event()
        try:
            return await self._prepare(messages, started)
        finally:
            started.set()

    async def _prepare(self, messages: list[Received], started: asyncio.Event) -> Prepared:
        self.sensor.on_batch_taken(self.agent, len(messages))
        valid, dead = dead_letters.parse_batch(messages, self.pipeline.parse, self.agent, self.sensor,
                                               self.policy)
        results = await self._infer([event for _, event in valid], started)
        built: list[tuple[Received, Built]] = []
        for (m, event), result in zip(valid, results):
            if isinstance(result, Failed):
                if self.policy.decide(result.error, Stage.MODELS)[1] is not Action.DEAD_LETTER:
                    raise result.error
                dead.append(dead_letter_row(m, "model_error", _describe(result.error)))
                continue
            try:
                b = self.pipeline.build(m, event, result)
                for _, value in [*b.records, *(r for rs in b.other_records.values() for r in rs)]:  # bytes only
                    if not isinstance(value, bytes):
                        raise TypeError(f"output record is {type(value).__name__}, not bytes")
            except Exception as exc:  # this event alone cannot be turned into rows or records
                if self.policy.decide(exc, Stage.BUILD)[1] is not Action.DEAD_LETTER:
                    raise
                log.error("%s[%d]@%d: cannot build its rows and records: %r", m.topic, m.partition, m.offset,
                          _describe(exc))
                dead.append(dead_letter_row(m, "encode_error", _describe(exc)))
                continue
            built.append((m, b))
        return Prepared(built, dead)

    async def _infer(self, events: list, started: asyncio.Event) -> list:
        if not events:
            return []
        loop = asyncio.get_running_loop()

        def run() -> list:  # the timeout counts from when the models take the batch, not from its queueing
            loop.call_soon_threadsafe(started.set)
            return self._infer_isolated(events)

        future = loop.run_in_executor(self.lane.models, run)
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait({future, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.model_timeout)
        except TimeoutError as exc:
            if self.policy.action(errors.Failure.MODEL_TIMEOUT, exc) is not Action.DEGRADE:
                raise
            # A thread cannot be interrupted: say so on /health and in the metrics, and wait on.
            part = f"{self.agent}_models"
            self.sensor.on_outage(part, f"a batch of {len(events)} events has been in the models for more than "
                                      f"{self.model_timeout:.0f} s")
            log.error("%s: a model batch of %d events is past its %.0f s timeout; waiting for it",
                      self.agent, len(events), self.model_timeout)
            try:
                return await future
            finally:
                self.sensor.on_recovery(part)

    def _infer_through_outages(self, events: list) -> list:
        """The pipeline's models over the events; while the models are unavailable (their process cannot be
        started), wait with back-off and try again: an outage pauses the agent, it never dead-letters."""
        delay, part, out = 0.25, f"{self.agent}_models", False
        while True:
            try:
                results = self.pipeline.infer(events)
            except Exception as exc:
                if self.policy.decide(exc, Stage.MODELS)[1] is not Action.RETRY:
                    if out:  # the models are back (this batch made them fail): the outage is over
                        self.sensor.on_recovery(part)
                    raise  # an event the models cannot take: found and dead-lettered by _infer_isolated
                self.sensor.on_outage(part, str(exc))
                out = True
                if self.sink.stopping.is_set():
                    raise
                log.error("%s: the models are unavailable (%s); retrying in %.1f s", self.agent, exc, delay)
                self.sink.stopping.wait(delay)
                delay = min(delay * 2, self.sink.retry_max)
                continue
            if out:
                self.sensor.on_recovery(part)
            return results

    def _infer_isolated(self, events: list) -> list:
        """One result per event, or ``Failed`` for an event the models cannot take (found one by one)."""
        started = time.perf_counter()
        try:
            return self._infer_one_by_one_on_failure(events)
        finally:
            self.sensor.on_models_ran(self.agent, time.perf_counter() - started)

    def _infer_one_by_one_on_failure(self, events: list) -> list:
        try:
            results = self._infer_through_outages(events)
            if len(results) == len(events):
                return results
            raise RuntimeError(f"the models returned {len(results)} results for {len(events)} events")
        except ModelsUnavailable:
            raise  # stopping during an outage: nothing is acknowledged, the restart takes the batch again
        except Exception:  # noqa: BLE001 - one bad input must not sink the batch: find it
            log.exception("%s: batch of %d failed in the models; retrying one event at a time",
                          self.agent, len(events))
        out = []
        for event in events:
            try:
                out.append(self._infer_through_outages([event])[0])
            except ModelsUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - reported as this event's dead letter
                out.append(Failed(exc))
        return out

    # -- commit: store, after-commit work, produce (on the commit stage) --------------------------------
    def _source_id(self, b: Built) -> str:
        """The id of the event's parent row: what its outbox rows belong to."""
        (key,) = self.pipeline.parent.primary_key.columns
        return next(str(row[key.name]) for table, row in b.rows if table is self.pipeline.parent)

    def _outputs(self, b: Built) -> list[tuple[str, bytes, bytes]]:
        """Every output record of an event as (topic, key, value)."""
        return [(self.pipeline.output_topic, k, v) for k, v in b.records] + [
            (topic, k, v) for topic, records in b.other_records.items() for k, v in records]

    async def commit(self, prepared: Prepared) -> None:
        run = functools.partial(asyncio.get_running_loop().run_in_executor, self.lane.db)
        batch = Batch(self.pipeline.parent, self.pipeline.children | {outbox.OUTBOX})
        for m, b in prepared.built:
            for table, row in b.rows:
                batch.add(table, row, m)
            source = self._source_id(b)
            for topic, key, value in self._outputs(b):  # rows of the parent: a replayed event writes none
                batch.add(outbox.OUTBOX, outbox.row(topic, source, key, value, self.outbox_lease), m)
        for row in prepared.dead:
            batch.add(DeadLetter.__table__, row)
        rejected = dict(await run(self.sink.write, batch))
        dead = list(prepared.dead)
        if rejected:
            late = [dead_letter_row(m, "db_rejected", reason) for m, reason in rejected.items()]
            await run(self.sink.write, Batch(rows={DeadLetter.__table__: [(None, row) for row in late]}))
            dead += late
        stored = [(m, b) for m, b in prepared.built if m not in rejected]
        # Only what this commit stored is sent now: a replayed event's records (a fresh model run) never are;
        # its stored ones, if a crash kept them from being sent, go with the outbox sweep.
        fresh = [(m, b) for m, b in stored if m in batch.fresh]
        committed = time.time()
        for m, _ in stored:
            self.sensor.on_end_to_end(self.agent, committed - m.timestamp)
        alerts = [a for _, b in stored for a in b.alerts]
        try:
            alerts += await run(self.sink.retrying, self.pipeline.after_commit, [b for _, b in stored])
            self.sensor.on_recovery(f"{self.agent}_after_commit")
        except Exception as exc:  # noqa: BLE001 - the rows are stored; a bug here must not stop the stream
            if self.policy.decide(exc, Stage.AFTER_COMMIT)[1] is not Action.DEGRADE:
                raise
            log.exception("%s: after-commit work failed", self.agent)
            self.sensor.on_outage(f"{self.agent}_after_commit", _describe(exc))
        if alerts:
            failpoint("alert_stored")  # the crash the alert outbox must survive
        await produce(self.output_topic, [record for _, b in fresh for record in b.records], self.agent,
                      self.sensor, self.policy)
        others: dict[str, list[tuple[bytes, bytes]]] = {}
        for _, b in fresh:
            for topic, records in b.other_records.items():
                others.setdefault(topic, []).extend(records)
        for topic, records in others.items():
            await produce(self._topic(topic), records, self.agent, self.sensor, self.policy)
        sent = [(topic, self._source_id(b)) for _, b in fresh for topic, _, _ in self._outputs(b)]
        # a replayed event: what its first run stored and never sent goes now, as stored
        replayed = [self._source_id(b) for m, b in stored if m not in batch.fresh]
        unsent = await run(self.sink.retrying, outbox.take_unsent, self.sink.engine, replayed,
                           self.outbox_lease) if replayed else []
        for topic in sorted({p.topic for p in unsent}):
            topic_of = self.output_topic if topic == self.pipeline.output_topic else self._topic(topic)
            await produce(topic_of, [(p.key, p.value) for p in unsent if p.topic == topic], self.agent,
                          sensor=self.sensor, policy=self.policy)
        sent += [(p.topic, p.source_id) for p in unsent]
        await run(self.sink.retrying, outbox.mark_produced, self.sink.engine, sent)
        await produce(self.dead_topic, [(row["key"] or b"", dead_letters.envelope(row)) for row in dead], self.agent,
                      self.sensor, self.policy)
        dead_letters.report(dead, self.sensor)
        await self.alerts.deliver(alerts, self.lane.db, self.sink.retrying)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
