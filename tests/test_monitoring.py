"""Monitoring: promtool checks, and every dashboard panel's query against a real Prometheus
scraping a real worker that processed the demo feed."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from agents.demo.feed import FEED_FILE
from agents.desk.store import add_user
from agents.replay import read_events
from infra.db import make_engine
from infra.embedded import free_port, wait_for_port
from infra.settings import PROJECT_ROOT
from tests.helpers import Worker, produce, start_services, wait_until

PROM = PROJECT_ROOT / "infra" / "prometheus"
DASHBOARDS = sorted((PROJECT_ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))
CHAT = ["I lost my card yesterday, please help", "How long does a transfer to another country take?",
        "Why is there an extra fee on my card payment?", "Can I top up with Apple Pay?",
        "My new card still hasn't arrived after two weeks", "I don't recognise a payment on my statement"]
METRIC_FAMILIES = [
    "sentinel_events_consumed_total", "sentinel_events_produced_total", "sentinel_dead_letters_total",
    "sentinel_batch_size", "sentinel_batch_queue_duration_seconds", "sentinel_model_tokenize_duration_seconds",
    "sentinel_model_infer_duration_seconds", "sentinel_db_write_duration_seconds",
    "sentinel_kafka_produce_duration_seconds", "sentinel_end_to_end_latency_seconds", "sentinel_consumer_lag",
    "sentinel_alerts_total", "sentinel_entity_negative_share", "sentinel_entity_window_mentions",
    "sentinel_model_info", "sentinel_db_up", "sentinel_chat_escalations_total", "sentinel_chat_customer_state_total",
]


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: `make test` installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus); `make test` installs it")
    return path


def test_rules_are_valid_and_their_unit_tests_pass(promtool):
    subprocess.run([promtool, "check", "rules", str(PROM / "rules.yml")], check=True, capture_output=True)
    out = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=PROM, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_deployment_config_is_valid(promtool, tmp_path):
    config = (PROM / "prometheus.yml").read_text().replace("/etc/prometheus/rules.yml", str(PROM / "rules.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    out = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def query(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def ready(base: str) -> bool:
    """Prometheus answers 503 while it loads its storage, after its port is already open."""
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def desk_post(base: str, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)


@pytest.mark.integration
def test_every_panel_returns_data_from_a_live_worker(promtool, tmp_path, capsys):
    services = start_services(tmp_path)
    # Auto-reply off: every draft waits for the desk's decisions.
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news,chat", SENTINEL_AUTO_REPLY="off").start(ready_timeout=400)
    # The desk too (its review counters feed the customer-service dashboard): Prometheus scrapes its
    # zero-valued series long before the decisions below.
    engine = make_engine(services.database_url, pool_size=1)
    add_user(engine, "monitor", "monitor-password-1", "agent")
    engine.dispose()
    desk_port = free_port()
    desk = subprocess.Popen([sys.executable, "-m", "agents.cli", "desk", "serve"], cwd=PROJECT_ROOT,
                            env={**os.environ, "KAFKA_BOOTSTRAP": services.bootstrap, "DATABASE_URL":
                                 services.database_url, "SENTINEL_DESK_HOST": "127.0.0.1",
                                 "SENTINEL_DESK_PORT": str(desk_port), "SENTINEL_STATE_DIR": str(tmp_path / "desk")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{PROM / 'rules.yml'}"]
scrape_configs:
  - job_name: sentinel
    static_configs: [{{targets: ["127.0.0.1:{worker.port}"]}}]
  - job_name: sentinel-desk
    static_configs: [{{targets: ["127.0.0.1:{desk_port}"]}}]
""")
    prometheus = subprocess.Popen([shutil.which("prometheus"), f"--config.file={config}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        wait_until(lambda: ready(base), timeout=60, interval=0.5, message="Prometheus ready")
        # Before any event: the database is up, and Prometheus sees it (no SentinelDatabaseDown, not
        # even pending, on a fresh idle worker).
        fresh = worker.metrics()
        assert re.search(r"^sentinel_db_up 1(\.0)?$", fresh, re.M), "a fresh worker must export sentinel_db_up 1"
        wait_until(lambda: query(base, 'sentinel_db_up == 1'), timeout=30, interval=1,
                   message="Prometheus scraped sentinel_db_up 1")
        time.sleep(3)  # a few rule evaluations
        fresh_db_alerts = query(base, 'ALERTS{alertname="SentinelDatabaseDown"}')
        values = read_events(FEED_FILE)
        produce(services.bootstrap, "news", values + [b"{broken json", b'{"id": "no-text"}'])
        produce(services.bootstrap, "chat", [json.dumps({"id": f"m{i}", "conversation_id": f"c{i}", "text": t}).encode()
                                             for i, t in enumerate(CHAT)] + [b'{"id": "bad chat"}'])
        wait_until(lambda: services.scalar("select count(*) from news_articles") >= len(values)
                   and services.scalar("select count(*) from reply_drafts") >= len(CHAT), timeout=900,
                   message="demo feed and chat messages processed")
        wait_for_port("127.0.0.1", desk_port, timeout=60)
        desk_base = f"http://127.0.0.1:{desk_port}"
        token = desk_post(desk_base, "/api/login", {"username": "monitor", "password": "monitor-password-1"})["token"]
        pending = [r.message_id for r in services.rows(
            "select message_id from reply_drafts where status = 'pending' order by message_id limit 3")]
        assert len(pending) == 3
        for message_id, path, body in zip(pending, ["approve", "approve", "reject"],
                                          [{}, {"text": "Edited by the desk."}, {"reason": "wrong answer"}]):
            assert desk_post(desk_base, f"/api/drafts/{message_id}/{path}", body, token)["decided"] is True
        time.sleep(8)  # a few more scrapes after the last batch
        exposition = worker.metrics()
        checked, empty = [], []
        for path in DASHBOARDS:
            for panel in json.loads(path.read_text())["panels"]:
                for target in panel["targets"]:
                    name = f"{path.stem} / {panel['title']} / {target['refId']}"
                    try:
                        wait_until(lambda: query(base, target["expr"]), timeout=20, interval=1, message=name)
                        checked.append(name)
                    except TimeoutError:
                        empty.append(name)
        spike_alerts = query(base, 'sum(sentinel_alerts_total{kind="sentiment_spike"})')
        desk_decisions = {r["metric"]["action"]: r["value"][1]
                          for r in query(base, "sum by (action) (sentinel_desk_reviews_total)")}
    finally:
        prometheus.terminate()
        prometheus.wait()
        desk.terminate()
        desk.wait()
        worker.stop()
        services.broker.stop()
        services.postgres.stop()
    assert fresh_db_alerts == []
    with capsys.disabled():
        print("\npanels checked against Prometheus:\n  " + "\n  ".join(checked))
    assert not empty
    assert len(checked) == sum(len(p["targets"]) for d in DASHBOARDS for p in json.loads(d.read_text())["panels"])
    missing = [f for f in METRIC_FAMILIES if f"\n{f}" not in exposition and not exposition.startswith(f)]
    assert not missing, f"metric families without live values: {missing}"
    assert spike_alerts[0]["value"][1] == "1"  # the demo feed's scripted burst
    assert desk_decisions == {"approve": "1", "edit": "1", "reject": "1"}  # as the desk took them, once each
