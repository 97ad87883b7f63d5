"""The Prometheus metrics registry: every metric Sentinel exports, in one place.

Names follow ``sentinel_<op>_<phase>_duration_seconds`` for timings. Label
values are bounded: topics, reasons, tasks and stages come from fixed sets.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

EVENTS_CONSUMED = Counter("sentinel_events_consumed_total", "Events read from an input topic.", ["topic"],
                          registry=REGISTRY)
EVENTS_PRODUCED = Counter("sentinel_events_produced_total", "Events written to an output topic.", ["topic"],
                          registry=REGISTRY)
DEAD_LETTERS = Counter("sentinel_dead_letters_total", "Messages sent to the dead letters, by reason.",
                       ["topic", "reason"], registry=REGISTRY)
BATCH_SIZE = Histogram("sentinel_batch_size", "Events per micro-batch.", ["agent"], buckets=_BATCH,
                       registry=REGISTRY)
BATCH_QUEUE = Histogram("sentinel_batch_queue_duration_seconds",
                        "Time from an event's arrival in Kafka to the start of its batch.", ["agent"],
                        buckets=_LATENCY, registry=REGISTRY)
BATCH_MODELS = Histogram("sentinel_batch_models_duration_seconds",
                         "Wall time all models took over one micro-batch (tasks may run side by side).", ["agent"],
                         buckets=_LATENCY, registry=REGISTRY)
MODEL_TOKENIZE = Histogram("sentinel_model_tokenize_duration_seconds", "Tokenization and padding time per call.",
                           ["task"], buckets=_LATENCY, registry=REGISTRY)
MODEL_INFER = Histogram("sentinel_model_infer_duration_seconds", "Model forward time per batch.", ["task"],
                        buckets=_LATENCY, registry=REGISTRY)
MODEL_DECODE = Histogram("sentinel_model_decode_duration_seconds",
                         "Time to turn one call's logits into results (labels, spans).", ["task"],
                         buckets=_LATENCY, registry=REGISTRY)
DB_WRITE = Histogram("sentinel_db_write_duration_seconds", "Time to write one batch in one transaction.",
                     ["agent"], buckets=_LATENCY, registry=REGISTRY)
KAFKA_PRODUCE = Histogram("sentinel_kafka_produce_duration_seconds", "Time to produce one batch's outputs.",
                          ["agent"], buckets=_LATENCY, registry=REGISTRY)
END_TO_END = Histogram("sentinel_end_to_end_latency_seconds",
                       "From the event's Kafka timestamp to its database commit.", ["agent"],
                       buckets=_LATENCY, registry=REGISTRY)
DB_ERRORS = Counter("sentinel_db_errors_total", "Failed database writes (each retried).", ["agent"],
                    registry=REGISTRY)
DB_UP = Gauge("sentinel_db_up", "1 while the database answers (writes or the periodic probe), 0 during an outage.",
              registry=REGISTRY)
CONSUMER_LAG = Gauge("sentinel_consumer_lag", "Messages behind the end of the partition.", ["topic", "partition"],
                     registry=REGISTRY)
MODEL_INFO = Gauge("sentinel_model_info", "The model behind each task (value 1).",
                   ["task", "model", "device", "dtype"], registry=REGISTRY)


MODEL_PROCESS_RESTARTS = Counter("sentinel_model_process_restarts_total",
                                 "Model processes that died and were replaced (chat's models run in a child).",
                                 ["agent"], registry=REGISTRY)
CHAT_ESCALATIONS = Counter("sentinel_chat_escalations_total",
                           "Chat messages handed to a person, by reason (a message may have several).",
                           ["reason"], registry=REGISTRY)
CUSTOMER_STATES = Counter("sentinel_chat_customer_state_total", "Stored chat messages by the customer's state.",
                          ["state"], registry=REGISTRY)
_PHASES = {"tokenize": MODEL_TOKENIZE, "infer": MODEL_INFER, "decode": MODEL_DECODE}


def record_phase(task: str, phase: str, seconds: float) -> None:
    """One model call's phase (from this process or reported back by a model process)."""
    histogram = _PHASES.get(phase)
    if histogram is not None:
        histogram.labels(task).observe(seconds)


def observe_model_phases(model) -> None:
    """Export a model's per-phase timings as they happen."""
    task = model.task
    model.timings.listeners.append(lambda phase, seconds, items: record_phase(task, phase, seconds))
    MODEL_INFO.labels(**model.describe()).set(1)


def forget_lag(topic: str, partition: int) -> None:
    """Drop a partition's lag gauge (after a rebalance took it away from this worker)."""
    try:
        CONSUMER_LAG.remove(topic, str(partition))
    except KeyError:
        pass


def render() -> bytes:
    return generate_latest(REGISTRY)


# The text exposition format; aiohttp wants the charset apart from the content type.
CONTENT_TYPE = "text/plain; version=0.0.4"

ALERTS = Counter("sentinel_alerts_total", "Alerts raised, by kind and severity.", ["kind", "severity"],
                 registry=REGISTRY)
WEBHOOK_FAILURES = Counter("sentinel_alert_webhook_failures_total", "Alerts the webhook could not deliver.",
                           registry=REGISTRY)
ENTITY_NEGATIVE_SHARE = Gauge("sentinel_entity_negative_share",
                              "Negative share of the current window, for the busiest keys only.", ["key"],
                              registry=REGISTRY)
ENTITY_MENTIONS = Gauge("sentinel_entity_window_mentions",
                        "Articles in the current window, for the busiest keys only.", ["key"], registry=REGISTRY)
ALERTS_REDELIVERED = Counter("sentinel_alerts_redelivered_total",
                             "Alerts stored but not delivered before (a crash or retry in between), sent again.",
                             registry=REGISTRY)
WORKER_DEGRADED = Gauge("sentinel_worker_degraded",
                        "1 while a model batch or a database call has run past its timeout, by what.", ["part"],
                        registry=REGISTRY)
LATE_EVENTS = Counter("sentinel_late_events_total",
                      "Articles whose spike window was already final when they arrived (stored, decide nothing).",
                      registry=REGISTRY)
FUTURE_TIMESTAMPS = Counter("sentinel_future_timestamps_total",
                            "Event times (published_at, chat ts or the Kafka record time) beyond the future tolerance, replaced "
                            "(agents/clock.py).",
                            registry=REGISTRY)
SPIKE_ALERTS_OPEN = Gauge("sentinel_spike_alert_open",
                          "Open sentiment-spike episodes as stored in PostgreSQL (1 each), with the alert's key and "
                          "severity (Prometheus hands them to Alertmanager with the same labels).",
                          ["key", "severity"], registry=REGISTRY)
