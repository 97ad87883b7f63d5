"""Sensors: what the stream core reports, apart from what it does (after ``faust/sensors``).

The loop, the sink, the dead letters, produce, the pipelines and the alerts call hooks on the
sensor they are given; they never touch a metric themselves. A ``Sensor`` has every hook as a
no-op, so an implementation overrides only what it cares about:

- ``PrometheusSensor``: every metric of ``infra/metrics.py`` (the one place that records them;
  names and labels are the contract in the README);
- ``agents.health.Health``: the outage hooks, for ``/health``;
- ``SensorDelegate``: fans each hook out to several sensors (the worker wires one: Prometheus and
  its health).

A component built without a sensor reports to ``default`` (the Prometheus one), so the metrics are
recorded wherever the class is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from infra import metrics


class Sensor:
    """Every hook, doing nothing. Hooks run on the event loop, a model lane or a database thread."""

    # -- the stream core ---------------------------------------------------------------------------
    def on_event_in(self, topic: str, agent: str, queued: float) -> None:
        """An event taken from ``topic``, ``queued`` seconds after its Kafka timestamp."""

    def on_batch_taken(self, agent: str, size: int) -> None:
        """A batch of ``size`` events taken by the agent."""

    def on_models_ran(self, agent: str, seconds: float) -> None:
        """The agent's models over one batch (wall time, failures and one-by-one retries included)."""

    def on_dead_letter(self, topic: str, reason: str) -> None:
        """A message of ``topic`` sent to the dead letters."""

    def on_lag(self, topic: str, partition: int, lag: int) -> None:
        """Messages behind the end of a partition (as the consumer last saw it)."""

    def on_lag_forgotten(self, topic: str, partition: int) -> None:
        """The partition went to another worker: its lag is no longer this worker's."""

    def on_end_to_end(self, agent: str, seconds: float) -> None:
        """One stored event: from its Kafka timestamp to its commit."""

    def on_produce(self, topic: str, agent: str, count: int, seconds: float) -> None:
        """``count`` records produced to ``topic`` and acknowledged by the broker."""

    # -- outages -----------------------------------------------------------------------------------
    def on_outage(self, part: str, why: str) -> None:
        """A part of the worker (``database``, ``<agent>_models``, ``<agent>_after_commit``) is degraded."""

    def on_recovery(self, part: str) -> None:
        """The part works again (called after each success: a part never degraded may be named too)."""

    # -- the database ------------------------------------------------------------------------------
    def on_db_write(self, agent: str, seconds: float) -> None:
        """One batch written in one transaction (or event by event, after the database rejected it whole)."""

    def on_db_error(self, agent: str) -> None:
        """A database call failed: an outage (it is retried) or a batch rejected for its content."""

    def on_db_up(self) -> None:
        """The database answered."""

    def on_db_down(self) -> None:
        """The database did not answer."""

    # -- models ------------------------------------------------------------------------------------
    def on_model_loaded(self, description: dict) -> None:
        """A model serving a task (``task``, ``model``, ``device``, ``dtype``)."""

    def on_model_phase(self, task: str, phase: str, seconds: float) -> None:
        """One model call's phase (``tokenize``, ``infer``, ``decode``)."""

    def on_model_restart(self, agent: str) -> None:
        """The agent's model process died and was replaced."""

    # -- event time --------------------------------------------------------------------------------
    def on_future_timestamp(self) -> None:
        """An event time beyond the future tolerance, replaced (``agents/clock.py``)."""

    def on_late_events(self, count: int) -> None:
        """Articles whose spike window was already final when they arrived."""

    # -- alerts ------------------------------------------------------------------------------------
    def on_alert_delivered(self, kind: str, severity: str) -> None:
        """An alert sent to the ``alerts`` topic (first delivery or redelivery)."""

    def on_alerts_redelivered(self, count: int) -> None:
        """Alerts stored but left undelivered, sent again by the sweep."""

    def on_webhook_failure(self) -> None:
        """An alert the webhook could not deliver (or dropped: its queue was full)."""

    def on_entity_windows(self, windows: dict[str, tuple[int, float]], gone: Iterable[str]) -> None:
        """The busiest keys' latest final windows, ``key -> (mentions, negative share)``; ``gone``: keys
        exported before and no longer among them."""

    def on_open_episodes(self, episodes: set[tuple[str, str]]) -> None:
        """Every open spike episode as stored, ``(key, severity)``."""

    # -- chat --------------------------------------------------------------------------------------
    def on_customer_state(self, state: str) -> None:
        """A stored chat message with the customer's state."""

    def on_escalation(self, reason: str) -> None:
        """A chat message handed to a person for ``reason`` (a message may have several)."""


HOOKS = tuple(name for name in vars(Sensor) if name.startswith("on_"))


class SensorDelegate(Sensor):
    """Fans every hook out to its sensors, in the order they were added."""

    def __init__(self, *sensors: Sensor):
        self.sensors: list[Sensor] = list(sensors)

    def add(self, sensor: Sensor) -> None:
        self.sensors.append(sensor)

    def remove(self, sensor: Sensor) -> None:
        self.sensors.remove(sensor)

    def __iter__(self):
        return iter(self.sensors)


def _fan_out(name: str):
    def hook(self, *args, **kwargs) -> None:
        for sensor in self.sensors:
            getattr(sensor, name)(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = name
    hook.__doc__ = getattr(Sensor, name).__doc__
    return hook


for _name in HOOKS:
    setattr(SensorDelegate, _name, _fan_out(_name))


class PrometheusSensor(Sensor):
    """The metrics of ``infra/metrics.py``: the only place in the agents that records them."""

    def __init__(self) -> None:
        self._degraded: set[str] = set()  # the parts whose sentinel_worker_degraded is 1
        self._lock = threading.Lock()

    def on_event_in(self, topic, agent, queued):
        metrics.EVENTS_CONSUMED.labels(topic).inc()
        metrics.BATCH_QUEUE.labels(agent).observe(max(0.0, queued))

    def on_batch_taken(self, agent, size):
        metrics.BATCH_SIZE.labels(agent).observe(size)

    def on_models_ran(self, agent, seconds):
        metrics.BATCH_MODELS.labels(agent).observe(seconds)

    def on_dead_letter(self, topic, reason):
        metrics.DEAD_LETTERS.labels(topic, reason).inc()

    def on_lag(self, topic, partition, lag):
        metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(0, lag))

    def on_lag_forgotten(self, topic, partition):
        metrics.forget_lag(topic, partition)

    def on_end_to_end(self, agent, seconds):
        metrics.END_TO_END.labels(agent).observe(max(0.0, seconds))

    def on_produce(self, topic, agent, count, seconds):
        metrics.KAFKA_PRODUCE.labels(agent).observe(seconds)
        metrics.EVENTS_PRODUCED.labels(topic).inc(count)

    def on_outage(self, part, why):
        with self._lock:
            self._degraded.add(part)
        metrics.WORKER_DEGRADED.labels(part).set(1)

    def on_recovery(self, part):
        with self._lock:
            if part not in self._degraded:
                return  # a part never degraded gets no series
            self._degraded.discard(part)
        metrics.WORKER_DEGRADED.labels(part).set(0)

    def on_db_write(self, agent, seconds):
        metrics.DB_WRITE.labels(agent).observe(seconds)

    def on_db_error(self, agent):
        metrics.DB_ERRORS.labels(agent).inc()

    def on_db_up(self):
        metrics.DB_UP.set(1)

    def on_db_down(self):
        metrics.DB_UP.set(0)

    def on_model_loaded(self, description):
        metrics.MODEL_INFO.labels(**description).set(1)

    def on_model_phase(self, task, phase, seconds):
        metrics.record_phase(task, phase, seconds)

    def on_model_restart(self, agent):
        metrics.MODEL_PROCESS_RESTARTS.labels(agent).inc()

    def on_future_timestamp(self):
        metrics.FUTURE_TIMESTAMPS.inc()

    def on_late_events(self, count):
        metrics.LATE_EVENTS.inc(count)

    def on_alert_delivered(self, kind, severity):
        metrics.ALERTS.labels(kind, severity).inc()

    def on_alerts_redelivered(self, count):
        metrics.ALERTS_REDELIVERED.inc(count)

    def on_webhook_failure(self):
        metrics.WEBHOOK_FAILURES.inc()

    def on_entity_windows(self, windows, gone):
        for key in gone:
            metrics.ENTITY_NEGATIVE_SHARE.remove(key)
            metrics.ENTITY_MENTIONS.remove(key)
        for key, (mentions, share) in windows.items():
            metrics.ENTITY_NEGATIVE_SHARE.labels(key).set(share)
            metrics.ENTITY_MENTIONS.labels(key).set(mentions)

    def on_open_episodes(self, episodes):
        # The gauge follows the table: whatever it holds that is no longer open goes, whoever set it
        # (series are removed one by one, never cleared, so a scrape never sees an open episode missing).
        exported = {(sample.labels["key"], sample.labels["severity"])
                    for metric in metrics.SPIKE_ALERTS_OPEN.collect() for sample in metric.samples}
        for labels in exported - episodes:
            metrics.SPIKE_ALERTS_OPEN.remove(*labels)
        for labels in episodes:
            metrics.SPIKE_ALERTS_OPEN.labels(*labels).set(1)

    def on_customer_state(self, state):
        metrics.CUSTOMER_STATES.labels(state).inc()

    def on_escalation(self, reason):
        metrics.CHAT_ESCALATIONS.labels(reason).inc()


default: Sensor = PrometheusSensor()  # what a component built without a sensor reports to


def resolve(sensor: Sensor | None, health: Sensor | None = None) -> Sensor:
    """The sensor a component reports to: the one it was given (the worker's delegate, which holds the
    worker's health), else ``default`` and, when one is given, ``health`` beside it."""
    if sensor is not None:
        return sensor
    return SensorDelegate(default, health) if health is not None else default


def observe_model(model, sensor: Sensor) -> None:
    """Report a model (``describe()``) and its per-phase timings as they happen (``models/runtime.py``)."""
    task = model.task
    model.timings.listeners.append(lambda phase, seconds, items: sensor.on_model_phase(task, phase, seconds))
    sensor.on_model_loaded(model.describe())
