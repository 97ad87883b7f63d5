"""The worker: settings → models, database, topics → a Faust app with its agent loops, timers and views."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import faust
from sqlalchemy import text

from agents import errors, sensors
from agents.alerts import routing
from agents.alerts.delivery import AlertDelivery
from agents.alerts.spikes import SpikeDetector
from agents.alerts.webhook import Webhook
from agents.app import create_app, produce
from agents.errors import Action, ClusterReset, Stage
from agents.health import Health
from agents.loop import AgentLoop, Lane
from agents.news import NewsPipeline
from agents.outbox import OutboxSweep
from agents.sinks import PostgresSink
from infra import memory, metrics
from infra.db import make_engine, migrate, redact
from infra.kafka import cluster_id, ensure_topics, topic_specs
from infra.logs import worker_logging
from infra.settings import Settings
from models.entity_keys import KeyResolver
from models.process import ModelProcess
from models.runtime import model_thread_pool, use_threads
from schemas import topics

log = logging.getLogger(__name__)
CHAT_NICENESS = 10  # the chat model process's nice value


def load_resolver(engine, settings: Settings) -> KeyResolver:
    """Company-to-ticker joins: the mapping file first, then those learned from earlier events."""
    fixed = KeyResolver.read_map(settings.entity_map) if settings.entity_map else {}
    with engine.connect() as conn:
        learned = dict(conn.execute(text("select alias, key from entity_aliases")).all())
    return KeyResolver(fixed, learned)


def alert_tick_interval(settings: Settings) -> float:
    """How often the detector looks at a quiet wire: a sixth of the idle timeout, between 1 and 10 s, so a
    burst followed by silence is decided within about 1.2 idle timeouts of its last event."""
    return min(10.0, max(1.0, settings.alert_idle_timeout / 6))


def enabled_agents(settings: Settings) -> set[str]:
    names = {a.strip() for a in settings.agents.split(",") if a.strip()}
    unknown = names - {"news", "chat"}
    if unknown or not names:
        raise ValueError(f"SENTINEL_AGENTS={settings.agents!r}: choose news, chat or news,chat")
    return names


def build_app(settings: Settings) -> faust.App:
    """Wiring only: models, lanes, sinks and alert delivery for each enabled agent; timers and views."""
    agents = enabled_agents(settings)
    app = create_app(settings)
    engine = make_engine(settings.database_url, statement_timeout=settings.db_statement_timeout)
    health = Health()
    sensor = sensors.SensorDelegate(sensors.default, health)  # every hook: the metrics and /health
    policy = errors.ErrorPolicy.from_settings(settings)  # what each failure gets (agents/errors.py)
    webhook = Webhook(settings.alert_webhook_url, settings.alert_webhook_token,
                      sensor=sensor) if settings.alert_webhook_url else None
    delivery = AlertDelivery(engine, app.topic(topics.ALERTS.name, partitions=1), webhook, settings.alert_redeliver_after,
                             sensor=sensor, policy=policy)
    service = Lane(models=None, db=ThreadPoolExecutor(1, thread_name_prefix="service-db"))
    service_sink = PostgresSink(engine, "service", settings.db_retry_max, health, sensor=sensor, policy=policy)
    sinks = [service_sink]
    loops: list[AgentLoop] = []
    model_versions: list[str] = []

    def add_agent(pipeline, lane: Lane, max_batch: int) -> PostgresSink:
        sink = PostgresSink(engine, pipeline.agent, settings.db_retry_max, health, sensor=sensor, policy=policy)
        sinks.append(sink)
        loop = AgentLoop(app, pipeline, sink, lane, delivery, health, max_batch=max_batch,
                         max_wait=settings.max_wait, model_timeout=settings.model_timeout,
                         outbox_lease=settings.outbox_redeliver_after, sensor=sensor,
                         policy=policy)
        loops.append(loop)
        app.agent(app.topic(pipeline.input_topic, partitions=settings.topic_partitions), name=pipeline.agent)(
            loop.run)
        return sink

    if "chat" in agents:
        # Chat's models (generation takes seconds a batch) run in a child process at a lower CPU
        # priority: no shared GIL with news, and on a busy CPU the kernel serves news first.
        # Started first, so its model loading overlaps nothing the news models need.
        from agents.chat import ChatPipeline
        from agents.conversation import ConversationHistory

        chat_threads = settings.chat_threads or settings.torch_threads or os.cpu_count() or 1
        chat_settings = settings.model_copy(update={"torch_threads": chat_threads, "parallel_tasks": "off"})
        chat_models = ModelProcess("chat", "models.chat:load_models", chat_settings, niceness=CHAT_NICENESS,
                                   threads=chat_threads,
                                   on_phase=sensor.on_model_phase,
                                   on_restart=functools.partial(sensor.on_model_restart, "chat"))
        described = chat_models.start()
        for model in described["models"]:
            sensor.on_model_loaded(model)
        model_versions.append(f"chat:{described['generator']}")

        @app.on_before_shutdown.connect
        async def stop_chat_models(app, **kwargs):
            chat_models.close()

        # The lane's model thread only waits on the child.
        from agents.desk.auto_reply import AutoReplyPolicy

        add_agent(ChatPipeline(chat_models, described["generator"], AutoReplyPolicy.from_settings(settings),
                               ConversationHistory.from_settings(engine, settings), settings.future_tolerance,
                               sensor=sensor),
                  Lane(ThreadPoolExecutor(1, thread_name_prefix="chat-models"),
                       ThreadPoolExecutor(1, thread_name_prefix="chat-db")), settings.generator_max_batch)

    if "news" in agents:
        from models.analysis import Analyzer

        # Read before the analyzer starts its task threads: they lower the count new threads start with.
        threads = use_threads(settings.torch_threads)
        analyzer = Analyzer.from_settings(settings)
        analyzer.warm_up()
        for model in analyzer.timed():
            sensors.observe_model(model, sensor)
        model_versions.append(f"news:{analyzer.version}")
        from agents import companies

        companies.ensure_default(engine)  # an empty company master gets the default universe
        detector = SpikeDetector(engine, settings, sensor=sensor)
        news = NewsPipeline(analyzer, analyzer.version, load_resolver(engine, settings), detector, engine,
                            sensor=sensor, universe=companies.load_universe(engine))
        detector.companies = lambda: news.universe.companies
        news_lane = Lane(model_thread_pool(1, threads, "news-models"),
                         ThreadPoolExecutor(1, thread_name_prefix="news-db"))
        news_sink = add_agent(news, news_lane, settings.max_batch)

        @app.timer(alert_tick_interval(settings))
        async def decide_quiet_windows(app):
            """Idle partitions and a quiet wire decide windows without waiting for the next event
            (in the news lane's database thread, where the batches' decisions run too)."""
            alerts = await asyncio.get_running_loop().run_in_executor(news_lane.db, news_sink.retrying,
                                                                      detector.tick)
            await delivery.deliver(alerts, news_lane.db, news_sink.retrying)

        @app.on_partitions_assigned.connect
        async def reset_watermark(app, assigned, **kwargs):
            detector.assign({tp.partition for tp in assigned if tp.topic == topics.NEWS.name})

    @app.on_partitions_revoked.connect
    async def forget_lag(app, revoked, **kwargs):
        for tp in revoked:  # a partition now read by another worker is not this worker's lag
            sensor.on_lag_forgotten(tp.topic, tp.partition)

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
        reset = ClusterReset(f"Kafka cluster id changed from {started_on!r} to {now!r}")
        if policy.decide(reset, Stage.LOOP)[1] is not Action.CRASH:  # crash: the only action it allows
            return
        log.critical("Kafka cluster was reset: %s now reports cluster id %r instead of %r, so its topics and "
                     "this group's offsets are gone (the embedded broker keeps everything in memory). Recreating "
                     "the topics and stopping; restart the worker (compose does; under `sentinel up`, run it again).",
                     settings.kafka_bootstrap, now, started_on)
        await loop.run_in_executor(None, functools.partial(
            ensure_topics, settings.kafka_bootstrap, topic_specs(settings.topic_partitions),
            replication=settings.topic_replication))
        await app.crash(reset)

    @app.timer(settings.db_check_interval)
    async def probe_database(app):
        """Keeps sentinel_db_up true to the database while the topics are idle."""
        await asyncio.get_running_loop().run_in_executor(service.db, check_database, engine, sensor)

    @app.timer(max(1.0, settings.alert_redeliver_after / 3))
    async def redeliver_alerts(app):
        await delivery.sweep(service.db, service_sink.retrying)

    sweep = OutboxSweep(engine, settings.outbox_redeliver_after)
    outbox_topics: dict[str, faust.TopicT] = {}

    @app.timer(settings.outbox_sweep_interval)
    async def send_outbox(app):
        """The one producer of the desk's replies, and of records a crash kept the agent loops from sending."""
        run = functools.partial(asyncio.get_running_loop().run_in_executor, service.db)
        due = await run(service_sink.retrying, sweep.take)
        for topic in sorted({p.topic for p in due}):
            if topic not in outbox_topics:
                outbox_topics[topic] = app.topic(topic, partitions=settings.topic_partitions)
            await produce(outbox_topics[topic], [(p.key, p.value) for p in due if p.topic == topic], "outbox",
                          sensor, policy)
        await run(service_sink.retrying, sweep.done, due)

    webhook_sweep = OutboxSweep(engine, settings.outbox_redeliver_after, webhooks=True)
    watchlist_hooks = routing.Posters(sensor)

    @app.timer(settings.outbox_sweep_interval)
    async def send_watchlist_webhooks(app):
        """The watchlists' webhooks (agents/alerts/routing.py): POSTs off the event loop, in the default pool."""
        await asyncio.get_running_loop().run_in_executor(
            None, service_sink.retrying, routing.send_due, engine, webhook_sweep, watchlist_hooks.post)

    @app.timer(600.0)
    async def prune_outbox(app):
        await asyncio.get_running_loop().run_in_executor(service.db, service_sink.retrying, sweep.prune)

    if settings.malloc_trim_interval:
        @app.timer(settings.malloc_trim_interval)
        async def return_free_memory(app):
            memory.trim()  # milliseconds; keeps RSS at what is in use (infra/memory.py)

    @app.page("/metrics")
    async def metrics_view(web, request):
        return web.bytes(metrics.render(), content_type=metrics.CONTENT_TYPE)

    allocator = memory.allocator_in_use()

    @app.page("/health")
    async def health_view(web, request):
        # The partitions this worker consumes now: 0 until the group has assigned it its share.
        assigned = len(app.consumer.assignment()) if app.consumer else 0
        return web.json({**health.report(), "app": settings.app_id, "agents": sorted(agents), "allocator": allocator,
                         "assigned_partitions": assigned})

    @app.on_before_shutdown.connect
    async def stop_sinks(app, **kwargs):
        for sink in sinks:
            sink.stopping.set()  # a sink retrying through an outage gives up so the worker can exit

    check_database(engine, sensor)
    log.info("worker ready: agents=%s kafka=%s database=%s models=%s allocator=%s", sorted(agents),
             settings.kafka_bootstrap, redact(settings.database_url), " ".join(model_versions), allocator)
    return app


def check_database(engine, sensor: sensors.Sensor) -> None:
    """One cheap query: sentinel_db_up and /health follow the database even when no batch is written."""
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means the database is not answering
        sensor.on_db_down()
        sensor.on_outage("database", f"database unavailable ({type(getattr(exc, 'orig', None) or exc).__name__})")
        return
    sensor.on_db_up()
    sensor.on_recovery("database")


def run_worker(settings: Settings) -> None:
    """Prepare the services (migrations, topics) and run the worker until it is stopped."""
    enabled_agents(settings)
    migrate(settings.database_url)
    ensure_topics(settings.kafka_bootstrap, topic_specs(settings.topic_partitions),
                  replication=settings.topic_replication)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False,
                          **worker_logging(settings))
    worker.execute_from_commandline()
