"""Sensors (agents/sensors.py): a fake sensor (named as such) records every hook the loop calls
through a ``SensorDelegate``; without a sensor, the loop reports to the Prometheus one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from agents.alerts.delivery import AlertDelivery
from agents.health import Health
from agents.loop import AgentLoop, Lane
from agents.news import NewsPipeline
from agents.sensors import HOOKS, PrometheusSensor, Sensor, SensorDelegate
from agents.sinks import PostgresSink
from infra import metrics
from tests.test_stream_core import (
    FakeAnalyzer,
    FakeApp,
    clear,
    news,
    news_loop,
    process,
    received,
)


class FakeSensor(Sensor):
    """Records each hook call as (hook, args)."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def named(self, hook: str) -> list[tuple]:
        return [args for name, args in self.calls if name == hook]


def _recorder(name: str):
    def hook(self, *args):
        self.calls.append((name, args))
    return hook


for _name in HOOKS:
    setattr(FakeSensor, _name, _recorder(_name))


def fake_loop(engine, sensor: Sensor) -> AgentLoop:
    app = FakeApp()
    delivery = AlertDelivery(engine, app.topic("alerts"), None, redeliver_after=30, sensor=sensor)
    sink = PostgresSink(engine, "news", sensor=sensor)
    return AgentLoop(app, NewsPipeline(FakeAnalyzer(), "fake-1", engine=engine, sensor=sensor), sink,
                     Lane(ThreadPoolExecutor(1), ThreadPoolExecutor(1)), delivery, Health(), max_batch=64,
                     max_wait=0.1, model_timeout=30, sensor=sensor)


def dead_letter_count(topic: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("sentinel_dead_letters_total", {"topic": topic, "reason": reason}) or 0.0


# -- sensors ---------------------------------------------------------------------------------------------


def test_the_delegate_hands_every_hook_of_a_loop_run_to_each_of_its_sensors(engine):
    clear(engine)
    first, second = FakeSensor(), FakeSensor()
    before = dead_letter_count("news", "invalid_json")
    loop = fake_loop(engine, SensorDelegate(first, second))
    process(loop, received([news(0), b"{not json", news(2, "BOOM Corp collapses"), news(3)]))

    assert first.calls == second.calls
    assert first.named("on_batch_taken") == [("news", 4)]
    assert [args[:2] for args in first.named("on_event_in")] == [("news", "news")] * 4
    assert sorted(first.named("on_dead_letter")) == [("news", "invalid_json"), ("news", "model_error")]
    assert [args[0] for args in first.named("on_models_ran")] == ["news"]
    assert [args[0] for args in first.named("on_db_write")] == ["news"]  # one transaction for the batch
    assert [args[0] for args in first.named("on_end_to_end")] == ["news", "news"]
    produced = {(topic, agent, count) for topic, agent, count, _ in first.named("on_produce")}
    assert produced == {("news.enriched", "news", 2), ("deadletter", "news", 2)}
    assert ("on_recovery", ("database",)) in first.calls and ("on_db_up", ()) in first.calls
    # a component given a sensor records no metric itself: that is the Prometheus sensor's work
    assert dead_letter_count("news", "invalid_json") == before


def test_without_a_sensor_the_loop_reports_to_the_prometheus_sensor_and_its_health(engine):
    clear(engine)
    before = dead_letter_count("news", "invalid_json")
    loop, _ = news_loop(engine)
    process(loop, received([news(0), b"{not json"]))
    assert dead_letter_count("news", "invalid_json") == before + 1
    loop.sensor.on_outage("news_models", "a test outage")
    assert loop.health.report()["problems"] == {"news_models": "a test outage"}


def test_the_prometheus_sensor_sets_a_degraded_part_back_to_zero_and_names_no_other():
    sensor = PrometheusSensor()

    def degraded(part: str):
        return metrics.REGISTRY.get_sample_value("sentinel_worker_degraded", {"part": part})

    sensor.on_recovery("test_never_degraded")
    assert degraded("test_never_degraded") is None  # no series for a part that never failed
    sensor.on_outage("test_part", "down")
    assert degraded("test_part") == 1
    sensor.on_recovery("test_part")
    assert degraded("test_part") == 0


def test_health_hears_only_the_outage_hooks():
    health = Health()
    SensorDelegate(Sensor(), health).on_outage("database", "database unavailable (OperationalError)")
    assert health.report() == {"status": "degraded",
                               "problems": {"database": "database unavailable (OperationalError)"}}
    health.on_recovery("database")
    assert health.report() == {"status": "ok", "problems": {}}
