"""The worker: settings → models, database, topics → a Faust app with its agents and web views."""

from __future__ import annotations

import asyncio
import json
import logging

import faust

from agents.alerts import SpikeDetector, Webhook
from agents.app import create_app
from agents.news import NewsPipeline, Received, dead_letter_envelope
from agents.sinks import PostgresSink
from infra import metrics
from infra.db import make_engine, migrate, redact
from infra.kafka import ensure_topics, topic_specs
from infra.settings import Settings
from models.entity_keys import KeyResolver

log = logging.getLogger(__name__)


async def produce(topic: faust.TopicT, records: list[tuple[bytes, bytes]]) -> None:
    """Send and wait for the broker's acknowledgement of every record."""
    if not records:
        return
    started = asyncio.get_running_loop().time()
    futures = [await topic.send(key=key, value=value) for key, value in records]
    await asyncio.gather(*futures)
    metrics.KAFKA_PRODUCE.labels("news").observe(asyncio.get_running_loop().time() - started)
    metrics.EVENTS_PRODUCED.labels(topic.get_topic_name()).inc(len(records))


def load_resolver(engine, settings: Settings) -> KeyResolver:
    """Company-to-ticker joins: the mapping file first, then those learned from earlier events."""
    from sqlalchemy import text

    fixed = KeyResolver.read_map(settings.entity_map) if settings.entity_map else {}
    with engine.connect() as conn:
        learned = dict(conn.execute(text("select alias, key from entity_aliases")).all())
    return KeyResolver(fixed, learned)


def record_lag(app: faust.App, events) -> None:
    """Messages behind the end of each partition in the batch (the end as the consumer last saw it)."""
    newest: dict = {}
    for event in events:
        tp = event.message.tp
        newest[tp] = max(newest.get(tp, -1), event.message.offset)
    for tp, offset in newest.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))


def build_app(settings: Settings, analyzer=None) -> faust.App:
    from models.analysis import Analyzer

    app = create_app(settings)
    engine = make_engine(settings.database_url)
    analyzer = analyzer or Analyzer.from_settings(settings)
    analyzer.warm_up()
    for model in (analyzer.sentiment, analyzer.entities):
        metrics.observe_model_phases(model)
    sink = PostgresSink(engine, "news", settings.db_retry_max)
    detector = SpikeDetector(engine, settings)
    webhook = Webhook(settings.alert_webhook_url, settings.alert_webhook_token) if settings.alert_webhook_url else None
    news = NewsPipeline(analyzer, sink, analyzer.version, load_resolver(engine, settings), detector)
    partitions = settings.topic_partitions
    news_topic = app.topic("news", partitions=partitions)
    enriched_topic = app.topic("news.enriched", partitions=partitions)
    dead_topic = app.topic("deadletter", partitions=1)
    alerts_topic = app.topic("alerts", partitions=1)

    @app.agent(news_topic, name="news")
    async def news_agent(stream):
        async for events in stream.take_events(settings.max_batch, within=settings.max_wait):
            out = await news.process([Received.from_event(e) for e in events])
            record_lag(app, events)
            await produce(enriched_topic, out.enriched)
            await produce(dead_topic, [(row["key"] or b"", dead_letter_envelope(row)) for row in out.dead])
            await produce(alerts_topic, [(a["key"].encode(), json.dumps(a).encode()) for a in out.alerts])
            for alert in out.alerts:
                metrics.ALERTS.labels(alert["kind"], alert["severity"]).inc()
                if webhook:
                    webhook.send_in_background(alert)

    @app.page("/metrics")
    async def metrics_view(web, request):
        return web.bytes(metrics.render(), content_type=metrics.CONTENT_TYPE)

    @app.page("/health")
    async def health_view(web, request):
        return web.json({"status": "ok", "app": settings.app_id})

    @app.on_partitions_assigned.connect
    async def reset_watermark(app, assigned, **kwargs):
        detector.assign({tp.partition for tp in assigned if tp.topic == "news"})

    @app.on_before_shutdown.connect
    async def stop_sink(app, **kwargs):
        sink.stopping.set()  # a sink retrying through an outage gives up so the worker can exit

    log.info("worker ready: kafka=%s database=%s models=%s", settings.kafka_bootstrap,
             redact(settings.database_url), analyzer.version)
    return app


def run_worker(settings: Settings) -> None:
    """Prepare the services (migrations, topics) and run the worker until it is stopped."""
    migrate(settings.database_url)
    ensure_topics(settings.kafka_bootstrap, topic_specs(settings.topic_partitions))
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
