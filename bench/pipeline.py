"""End-to-end news pipeline against the models' own batched throughput, in one run.

1. model-only: the worker's models on the same events, in batches of ``max_batch``;
2. end-to-end: a backlog of events produced at once to the real worker on the embedded
   stack; events/s from the first produce to the last database commit;
3. latency: events replayed at half the end-to-end rate; p50/p99 from the Kafka record
   time to the database write.

Run: ``python -m bench.pipeline [--events N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from agents.demo.feed import generate
from bench.common import print_table, save
from infra.harness import Worker, produce, start_services, wait_until
from infra.progress import console
from infra.settings import get_settings


def _events(n: int, prefix: str) -> list[dict]:
    events = generate(n=n, burst_at=None, seed=21, prefix=prefix)
    for e in events:
        e.pop("published_at")  # event time = Kafka record time, so latency is measured from the produce
    return events


def model_only(events: list[dict], max_batch: int, rounds: int = 2) -> float:
    from models.analysis import Analyzer
    from schemas.events import NewsEvent

    analyzer = Analyzer.from_settings()
    analyzer.warm_up()
    texts = [NewsEvent.model_validate(e).content for e in events]
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(texts), max_batch):
            analyzer.analyze_texts(texts[i : i + max_batch])
        best = max(best, len(texts) / (time.perf_counter() - start))
    return best


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(n_events: int = 1500, latency_seconds: float = 40.0) -> dict:
    settings = get_settings()
    events = _events(n_events, "bench")
    console.print(f"model-only: {min(n_events, 640)} events in batches of {settings.max_batch} …")
    model_rate = model_only(events[:640], settings.max_batch)
    console.print(f"model-only: {model_rate:.1f} events/s")

    folder = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
    services = start_services(folder)
    worker = Worker(services, folder, SENTINEL_AGENTS="news").start()
    try:
        console.print(f"end-to-end: {n_events} events produced at once …")
        started = time.time()
        produce(services.bootstrap, "news", [json.dumps(e).encode() for e in events],
                [e["id"].encode() for e in events])
        wait_until(lambda: services.scalar("select count(*) from news_articles") >= n_events, timeout=1800,
                   interval=0.25, message=f"{n_events} stored")
        last = services.scalar("select extract(epoch from max(processed_at)) from news_articles")
        e2e_rate = n_events / (float(last) - started)
        console.print(f"end-to-end: {e2e_rate:.1f} events/s")

        rate = e2e_rate / 2
        n_latency = int(rate * latency_seconds)
        console.print(f"latency: {n_latency} events at {rate:.1f}/s (half the end-to-end rate) …")
        from agents.replay import replay

        replay([json.dumps(e).encode() for e in _events(n_latency, "lat")], services.bootstrap, "news", rate)
        wait_until(lambda: services.scalar("select count(*) from news_articles where id like 'lat-%'") >= n_latency,
                   timeout=600, message="latency events stored")
        latencies = [float(r[0]) for r in services.rows(
            "select extract(epoch from processed_at - event_time) from news_articles where id like 'lat-%'")]
    finally:
        worker.stop()
        services.broker.stop()
        services.postgres.stop()

    result = {
        "events": n_events, "max_batch": settings.max_batch, "max_wait_s": settings.max_wait,
        "token_budget": settings.token_budget, "mean_text_chars": round(
            sum(len(e["text"]) for e in events) / len(events), 1),
        "model_only_events_per_s": round(model_rate, 1),
        "end_to_end_events_per_s": round(e2e_rate, 1),
        "ratio_end_to_end_to_model": round(e2e_rate / model_rate, 3),
        "latency_load_events_per_s": round(rate, 1),
        "latency_events": n_latency,
        "latency_p50_s": round(_percentile(latencies, 0.5), 3),
        "latency_p99_s": round(_percentile(latencies, 0.99), 3),
    }
    print_table("news pipeline, embedded Tansu + PostgreSQL, one worker", result)
    console.print(f"written to {save('pipeline', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--latency-seconds", type=float, default=40.0)
    args = parser.parse_args()
    main(args.events, args.latency_seconds)
