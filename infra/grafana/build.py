"""Grafana dashboards as code: ``sentinel grafana-build`` writes dashboards/*.json.

Each panel's queries are plain PromQL (no Grafana variables), so the test suite can
run every one of them against a real Prometheus scraping a real worker.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas import topics

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def panel(title: str, queries: dict[str, str], unit: str = "short", kind: str = "timeseries") -> dict:
    return {"title": title, "type": kind, "datasource": DATASOURCE,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                        for i, (legend, expr) in enumerate(queries.items())]}


def dashboard(uid: str, title: str, panels: list[dict]) -> dict:
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return {"uid": uid, "title": title, "tags": ["sentinel"], "timezone": "utc", "schemaVersion": 39,
            "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "panels": panels}


def pipeline_health() -> dict:
    return dashboard("sentinel-pipeline", "Sentinel / pipeline health", [
        panel("Events consumed per second", {"{{topic}}": "sum by (topic) (rate(sentinel_events_consumed_total[1m]))"},
              "ops"),
        panel("Events produced per second", {"{{topic}}": "sum by (topic) (rate(sentinel_events_produced_total[1m]))"},
              "ops"),
        panel("Dead letters by reason", {"{{reason}}": "sum by (reason) (sentinel_dead_letters_total)"}),
        panel("Micro-batch size (p50, p95)", {
            "p50": "histogram_quantile(0.5, sum by (le) (rate(sentinel_batch_size_bucket[5m])))",
            "p95": "histogram_quantile(0.95, sum by (le) (rate(sentinel_batch_size_bucket[5m])))"}),
        panel("Model time per batch, p95 (tokenize, infer)", {
            "tokenize {{task}}": "histogram_quantile(0.95, sum by (le, task) "
                                 "(rate(sentinel_model_tokenize_duration_seconds_bucket[5m])))",
            "infer {{task}}": "histogram_quantile(0.95, sum by (le, task) "
                              "(rate(sentinel_model_infer_duration_seconds_bucket[5m])))"}, "s"),
        panel("Queue, database write and produce time, p95", {
            "queue": "histogram_quantile(0.95, sum by (le) (rate(sentinel_batch_queue_duration_seconds_bucket[5m])))",
            "db write": "histogram_quantile(0.95, sum by (le) (rate(sentinel_db_write_duration_seconds_bucket[5m])))",
            "produce": "histogram_quantile(0.95, sum by (le) "
                       "(rate(sentinel_kafka_produce_duration_seconds_bucket[5m])))"}, "s"),
        panel("End-to-end latency (event to commit)", {
            "p50": "histogram_quantile(0.5, sum by (le) (rate(sentinel_end_to_end_latency_seconds_bucket[5m])))",
            "p99": "histogram_quantile(0.99, sum by (le) (rate(sentinel_end_to_end_latency_seconds_bucket[5m])))"},
              "s"),
        panel("Consumer lag", {"{{topic}}": "sum by (topic) (sentinel_consumer_lag)"}),
        panel("Database up", {"{{instance}}": "min by (instance) (sentinel_db_up)"}, kind="stat"),
        panel("Models", {"{{task}} {{model}} {{device}} {{dtype}}": "sentinel_model_info"}, kind="table"),
    ])


def sentiment_by_company() -> dict:
    return dashboard("sentinel-sentiment", "Sentinel / sentiment by company", [
        panel("Negative share, current window (busiest keys)", {"{{key}}": "sentinel_entity_negative_share"},
              "percentunit"),
        panel("Mentions in the current window", {"{{key}}": "sentinel_entity_window_mentions"}),
        panel("Spike alerts by severity", {"{{severity}}": 'sum by (severity) (sentinel_alerts_total{kind="sentiment_spike"})'},
              kind="stat"),
        panel("Enriched headlines per second", {
            "enriched": 'sum(rate(sentinel_events_produced_total{topic="%s"}[1m]))' % topics.NEWS_ENRICHED}, "ops"),
    ])


def customer_service() -> dict:
    return dashboard("sentinel-chat", "Sentinel / customer service", [
        panel("Chat messages per second", {
            "consumed": 'sum(rate(sentinel_events_consumed_total{topic="%s"}[1m]))' % topics.CHAT,
            "drafts": 'sum(rate(sentinel_events_produced_total{topic="%s"}[1m]))' % topics.CHAT_REPLIES},
              "ops"),
        panel("Escalations by severity", {"{{severity}}": 'sum by (severity) (sentinel_alerts_total{kind="escalation"})'},
              kind="stat"),
        panel("Escalations by reason, last hour", {
            "{{reason}}": "sum by (reason) (increase(sentinel_chat_escalations_total[1h]))"}, kind="bargauge"),
        panel("Customer state of chat messages, last hour (share)", {
            "{{state}}": "sum by (state) (increase(sentinel_chat_customer_state_total[1h])) "
                         "/ scalar(sum(increase(sentinel_chat_customer_state_total[1h])) > 0)"},
              "percentunit", "bargauge"),
        panel("Chat model time per batch, p95 (chat_trunk: every head in one pass; intent: conversation "
              "contexts; the generator only with generated openings)", {
            "{{task}}": "histogram_quantile(0.95, sum by (le, task) (rate(sentinel_model_infer_duration_seconds_bucket"
                        '{task=~"chat_trunk|intent|customer_state|generator"}[5m])))'}, "s"),
        panel("Chat latency (message to stored draft)", {
            "p50": 'histogram_quantile(0.5, sum by (le) (rate(sentinel_end_to_end_latency_seconds_bucket{agent="chat"}[5m])))',
            "p99": 'histogram_quantile(0.99, sum by (le) (rate(sentinel_end_to_end_latency_seconds_bucket{agent="chat"}[5m])))'},
              "s"),
        panel("Chat dead letters by reason", {
            "{{reason}}": 'sum by (reason) (sentinel_dead_letters_total{topic="%s"})' % topics.CHAT}),
        panel("Desk decisions per intent, last 24 h (share accepted, edited, rejected)",
              {f"{{{{intent}}}} {shown}": review_share(action) for action, shown in
               [("approve", "accepted"), ("edit", "edited"), ("reject", "rejected")]}, "percentunit", "bargauge"),
    ])


def review_share(action: str) -> str:
    """The share of the desk's decisions of the last 24 h on each intent's drafts that took ``action``; intents
    without decisions are left out (the desk exports every series from start-up, so a share is 0, not missing)."""
    return (f'sum by (intent) (increase(sentinel_desk_reviews_total{{action="{action}"}}[1d])) '
            "/ (sum by (intent) (increase(sentinel_desk_reviews_total[1d])) > 0)")


DASHBOARDS = {"pipeline-health.json": pipeline_health, "sentiment-by-company.json": sentiment_by_company,
              "customer-service.json": customer_service}


def build() -> list[Path]:
    OUT.mkdir(exist_ok=True)
    paths = []
    for name, make in DASHBOARDS.items():
        path = OUT / name
        path.write_text(json.dumps(make(), indent=2) + "\n")
        paths.append(path)
    return paths
