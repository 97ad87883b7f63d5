"""The Faust application: one place that turns settings into an App, its topics and their produce."""

from __future__ import annotations

import asyncio
import logging
import math

import faust
from mode.utils.queues import FlowControlQueue

from agents import errors, sensors
from agents.errors import Action, Stage
from agents.transport import Transport
from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)
PRODUCE_RETRY_MAX = 30.0  # the longest back-off between sends, when the error policy retries broker errors


class App(faust.App):
    """Faust's App on Sentinel's transport (see agents/transport.py)."""

    fetch_max_wait: float = 1.5  # seconds; create_app sets it from the settings

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)


def max_poll_records(stream_buffer: int, partitions: int) -> int:
    """The most records one fetch may bring, so that one slow agent never stops the others.

    All agents share one consumer and one delivery loop. Faust stops fetching a partition once its agent's
    buffer holds ``stream_buffer / 1.25`` events (mode's ``FlowControlQueue.pressure_high_ratio``), but
    delivers what was already fetched, and a record that finds its buffer full blocks the loop, and with it
    every agent: the news waited minutes behind a chat backlog (``tests/test_agents_apart.py``). Each of an
    agent's partitions may bring one more fetch before it is stopped, so one fetch gets the room above that
    mark shared by the partitions."""
    room = stream_buffer - math.ceil(stream_buffer / FlowControlQueue.pressure_high_ratio)
    return max(1, room // partitions)


def create_app(settings: Settings | None = None) -> faust.App:
    s = settings or get_settings()
    if not s.kafka_bootstrap:
        raise RuntimeError("KAFKA_BOOTSTRAP is not set: run `sentinel up` (embedded broker) or point it at Kafka")
    servers = ";".join(f"kafka://{b.strip()}" for b in s.kafka_bootstrap.split(","))
    app = App(
        s.app_id,
        broker=servers,
        # Raw bytes in and out: validation is ours, so bad input reaches the dead letters instead of a codec crash.
        key_serializer="raw",
        value_serializer="raw",
        # Tansu holds a group join for half the session timeout; keep it short.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=s.commit_interval,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=s.stream_buffer,
        broker_max_poll_records=s.max_poll_records or max_poll_records(s.stream_buffer, s.topic_partitions),
        topic_partitions=s.topic_partitions,
        topic_replication_factor=s.topic_replication,
        producer_acks=-1,
        processing_guarantee="at_least_once",  # exactly_once needs InitProducerId, which Tansu lacks
        web_host=s.metrics_host,
        web_port=s.metrics_port,
        web_in_thread=False,
        # The web server serves GET /metrics and /health only: Faust's own views (table
        # lookups, the router, stats, the graph) stay off, so nothing accepts data over HTTP.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        store="memory://",
        table_cleanup_interval=30.0,
    )
    app.fetch_max_wait = s.fetch_max_wait
    return app


async def produce(topic: faust.TopicT, records: list[tuple[bytes, bytes]], agent: str,
                  sensor: sensors.Sensor | None = None, policy: errors.ErrorPolicy | None = None) -> None:
    """Send and wait for the broker's acknowledgement of every record (reported to ``sensor``).

    A send the Kafka client gave up on is the error policy's ``broker_error``: raised by default (the
    worker stops and replays), or sent again with back-off when the policy says ``retry``."""
    if not records:
        return
    loop = asyncio.get_running_loop()
    started = loop.time()
    delay = 0.25
    while True:
        try:
            futures = [await topic.send(key=key, value=value) for key, value in records]
            await asyncio.gather(*futures)
            break
        except Exception as exc:
            if (policy or errors.default).decide(exc, Stage.PRODUCE)[1] is not Action.RETRY:
                raise
            log.warning("%s: producing to %s failed (%s); sending again in %.1f s", agent, topic.get_topic_name(),
                        type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, PRODUCE_RETRY_MAX)
    (sensor or sensors.default).on_produce(topic.get_topic_name(), agent, len(records), loop.time() - started)
