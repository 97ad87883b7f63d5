"""The worker: settings → models, database, topics → a Faust app with its agents and web views."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import faust
from sqlalchemy import text

from agents.alerts.spikes import SpikeDetector
from agents.alerts.webhook import Webhook
from agents.app import create_app
from agents.commit_stage import CommitStage
from agents.news import (
    NewsPipeline,
    Outputs,
    Received,
    dead_letter_envelope,
    report_dead_letters,
)
from agents.sinks import PostgresSink
from infra import metrics
from infra.db import make_engine, migrate, redact
from infra.kafka import cluster_id, ensure_topics, topic_specs
from infra.settings import Settings
from models.entity_keys import KeyResolver
from models.runtime import model_thread_pool, use_threads

log = logging.getLogger(__name__)


async def produce(topic: faust.TopicT, records: list[tuple[bytes, bytes]], agent: str) -> None:
    """Send and wait for the broker's acknowledgement of every record."""
    if not records:
        return
    loop = asyncio.get_running_loop()
    started = loop.time()
    futures = [await topic.send(key=key, value=value) for key, value in records]
    await asyncio.gather(*futures)
    metrics.KAFKA_PRODUCE.labels(agent).observe(loop.time() - started)
    metrics.EVENTS_PRODUCED.labels(topic.get_topic_name()).inc(len(records))


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


def load_resolver(engine, settings: Settings) -> KeyResolver:
    """Company-to-ticker joins: the mapping file first, then those learned from earlier events."""
    fixed = KeyResolver.read_map(settings.entity_map) if settings.entity_map else {}
    with engine.connect() as conn:
        learned = dict(conn.execute(text("select alias, key from entity_aliases")).all())
    return KeyResolver(fixed, learned)


class ClusterReset(RuntimeError):
    """The Kafka cluster the worker started on is gone (a new cluster answers at the same address)."""


def enabled_agents(settings: Settings) -> set[str]:
    names = {a.strip() for a in settings.agents.split(",") if a.strip()}
    unknown = names - {"news", "chat"}
    if unknown or not names:
        raise ValueError(f"SENTINEL_AGENTS={settings.agents!r}: choose news, chat or news,chat")
    return names


def build_app(settings: Settings) -> faust.App:
    from models.analysis import Analyzer

    agents = enabled_agents(settings)
    app = create_app(settings)
    engine = make_engine(settings.database_url)
    # Read before the analyzer starts its task threads: they lower the count new threads start with.
    threads = use_threads(settings.torch_threads)
    analyzer = Analyzer.from_settings(settings)
    analyzer.warm_up()
    for model in (analyzer.sentiment, analyzer.entities):
        metrics.observe_model_phases(model)
    model_pool = model_thread_pool(1, threads, "models")
    db_pool = ThreadPoolExecutor(1, thread_name_prefix="db")
    sinks: list[PostgresSink] = []
    webhook = Webhook(settings.alert_webhook_url, settings.alert_webhook_token) if settings.alert_webhook_url else None
    partitions = settings.topic_partitions
    dead_topic = app.topic("deadletter", partitions=1)
    alerts_topic = app.topic("alerts", partitions=1)

    async def deliver(agent: str, output_topic: faust.TopicT, out: Outputs) -> None:
        await produce(output_topic, out.enriched, agent)
        await produce(dead_topic, [(row["key"] or b"", dead_letter_envelope(row)) for row in out.dead], agent)
        await produce(alerts_topic, [(a["key"].encode(), json.dumps(a).encode()) for a in out.alerts], agent)
        report_dead_letters(out.dead)
        for alert in out.alerts:
            metrics.ALERTS.labels(alert["kind"], alert["severity"]).inc()
            if webhook:
                webhook.send_in_background(alert)

    async def run_stages(stream, stage: CommitStage, max_batch: int, prepare, store) -> None:
        """Take batches, run the models on each, and hand it to the commit stage (see agents/commit_stage.py)."""
        try:
            async for events in stream.take_events(max_batch, within=settings.max_wait):
                stage.hold(events)
                prepared = await prepare([Received.from_event(e) for e in events])
                record_lag(app, events)
                await stage.submit(events, functools.partial(store, prepared))
        except Exception as exc:  # noqa: BLE001 - held events stay unacknowledged; the restart replays them
            await stage.fail(exc)

    if "news" in agents:
        sink = PostgresSink(engine, "news", settings.db_retry_max)
        sinks.append(sink)
        detector = SpikeDetector(engine, settings)
        news = NewsPipeline(analyzer, sink, analyzer.version, load_resolver(engine, settings), detector,
                            model_pool, db_pool)
        enriched_topic = app.topic("news.enriched", partitions=partitions)

        async def store_news(prepared) -> None:
            await deliver("news", enriched_topic, await news.store(prepared))

        @app.agent(app.topic("news", partitions=partitions), name="news")
        async def news_agent(stream):
            await run_stages(stream, CommitStage(app, "news"), settings.max_batch, news.prepare, store_news)

        @app.on_partitions_assigned.connect
        async def reset_watermark(app, assigned, **kwargs):
            detector.assign({tp.partition for tp in assigned if tp.topic == "news"})

    if "chat" in agents:
        from agents.chat import ChatPipeline
        from models.generator import ReplyGenerator
        from models.intent import IntentClassifier
        from models.knowledge import Retriever
        from models.replies import ReplyComposer

        intents = IntentClassifier.from_settings(settings)
        intents.warm_up()
        metrics.observe_model_phases(intents)
        generator = ReplyGenerator.from_settings(settings)
        metrics.observe_model_phases(generator)
        composer = ReplyComposer(Retriever.from_settings(settings), generator, settings.chat_min_confidence,
                                 settings.chat_negative_escalation)
        sink = PostgresSink(engine, "chat", settings.db_retry_max)
        sinks.append(sink)
        chat = ChatPipeline(analyzer, intents, composer, sink, model_pool, db_pool)
        replies_topic = app.topic("chat.replies", partitions=partitions)

        async def store_chat(prepared) -> None:
            await deliver("chat", replies_topic, await chat.store(prepared))

        @app.agent(app.topic("chat", partitions=partitions), name="chat")
        async def chat_agent(stream):
            await run_stages(stream, CommitStage(app, "chat"), settings.generator_max_batch, chat.prepare,
                             store_chat)

    started_on = cluster_id(settings.kafka_bootstrap)

    @app.timer(settings.cluster_check_interval)
    async def check_cluster(app):
        """A broker that lost its data (the embedded one keeps it in memory) is a new, empty cluster: the
        group's offsets and the topics' partition counts are gone. Recreate the topics and stop, so the
        restarted worker joins the new cluster cleanly instead of consuming from auto-created topics."""
        loop = asyncio.get_running_loop()
        try:
            now = await loop.run_in_executor(None, cluster_id, settings.kafka_bootstrap)
        except Exception as exc:  # noqa: BLE001 - an unreachable broker is Faust's to report and retry
            log.debug("cluster check skipped: %s", exc)
            return
        if now == started_on:
            return
        log.critical("Kafka cluster was reset: %s now reports cluster id %r instead of %r, so its topics and "
                     "this group's offsets are gone (the embedded broker keeps everything in memory). Recreating "
                     "the topics and stopping; restart the worker (compose does; under `sentinel up`, run it again).",
                     settings.kafka_bootstrap, now, started_on)
        await loop.run_in_executor(None, ensure_topics, settings.kafka_bootstrap, topic_specs(partitions))
        await app.crash(ClusterReset(f"Kafka cluster id changed from {started_on!r} to {now!r}"))

    @app.page("/metrics")
    async def metrics_view(web, request):
        return web.bytes(metrics.render(), content_type=metrics.CONTENT_TYPE)

    @app.page("/health")
    async def health_view(web, request):
        # The partitions this worker consumes now: 0 until the group has assigned it its share.
        assigned = len(app.consumer.assignment()) if app.consumer else 0
        return web.json({"status": "ok", "app": settings.app_id, "agents": sorted(agents),
                         "assigned_partitions": assigned})

    @app.on_before_shutdown.connect
    async def stop_sinks(app, **kwargs):
        for sink in sinks:
            sink.stopping.set()  # a sink retrying through an outage gives up so the worker can exit

    log.info("worker ready: agents=%s kafka=%s database=%s models=%s", sorted(agents), settings.kafka_bootstrap,
             redact(settings.database_url), analyzer.version)
    return app


def run_worker(settings: Settings) -> None:
    """Prepare the services (migrations, topics) and run the worker until it is stopped."""
    enabled_agents(settings)
    migrate(settings.database_url)
    ensure_topics(settings.kafka_bootstrap, topic_specs(settings.topic_partitions))
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
