"""End-to-end news pipeline against the models' own batched throughput, in one run.

1. rounds (``--rounds``, default 3) with the stack up: model-only, end-to-end, model-only, … .
   Model-only runs the worker's models (same settings) on demo events in batches of
   ``max_batch``, in this process; with ``naive_texts`` (``bench.performance``) the naive
   baseline (``bench.naive``) runs right after each model-only run. End-to-end produces a
   backlog of events at once to the real worker on the embedded stack: events/s from the
   first produce to the last database commit, compared with the mean of the runs just before
   and after it (the machine's speed drifts within minutes). The worker's own model time over
   the same round (from its /metrics) gives the share of the round the models were busy;
2. latency: events replayed at shares of the end-to-end rate (``--loads``, default 50%);
   p50/p99 from the Kafka record time to the database write, and the worker's RSS;
3. burst (``--burst``): ten times the 50% rate for 20 s produced at once; the worker's peak
   RSS against its median RSS at 50% load (queues are bounded, so memory must be too).

Run: ``python -m bench.pipeline [--events N] [--rounds R] [--loads 0.25,0.5,0.9] [--burst]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from schemas import topics
from agents.demo.feed import generate
from bench.common import percentile, print_table, save
from bench.naive import Naive
from infra.harness import (
    Worker,
    metric_total,
    produce,
    tree_rss_mib,
    start_services,
    wait_until,
)
from infra.progress import console
from infra.settings import get_settings


def timed_events(n: int, prefix: str, seed: int = 21) -> list[dict]:
    """Demo-feed events without ``published_at``: event time = Kafka record time, so latency runs from the produce."""
    events = generate(n=n, burst_at=None, seed=seed, prefix=prefix)
    for e in events:
        e.pop("published_at")
    return events


def backlog_rate(services, prefix: str, events: list[dict]) -> float:
    """Produce ``events`` (ids ``prefix-…``) at once; events/s from the first produce to the last commit."""
    started = time.time()
    produce(services.bootstrap, topics.NEWS.name, [json.dumps(e).encode() for e in events], [e["id"].encode() for e in events])
    wait_until(lambda: _stored(services, prefix) >= len(events), timeout=1800, interval=0.25,
               message=f"{len(events)} stored")
    last = services.scalar("select extract(epoch from max(processed_at)) from news_articles where id like :p",
                           p=f"{prefix}-%")
    return len(events) / (float(last) - started)


def model_only(analyzer, texts: list[str], max_batch: int) -> float:
    """The models alone on ``texts`` in batches of ``max_batch``, in this process: texts/s."""
    start = time.perf_counter()
    for i in range(0, len(texts), max_batch):
        analyzer.analyze_texts(texts[i : i + max_batch])
    return len(texts) / (time.perf_counter() - start)


def model_busy_seconds(metrics_text: str) -> float:
    """Seconds the worker's models spent on news batches (wall time, tasks side by side), from its /metrics."""
    return metric_total(metrics_text, "sentinel_batch_models_duration_seconds_sum")


def _stored(services, prefix: str) -> int:
    return services.scalar("select count(*) from news_articles where id like :p", p=f"{prefix}-%")


def _at_load(services, worker, rate: float, seconds: float, prefix: str) -> dict:
    """Replay at ``rate`` for ``seconds``; p50/p99 from the Kafka record time to the database write,
    and the worker's RSS sampled meanwhile."""
    from agents.replay import replay

    n = max(20, int(rate * seconds))
    rss: list[float] = []
    sender = threading.Thread(target=replay, args=([json.dumps(e).encode() for e in timed_events(n, prefix)],
                                                   services.bootstrap, topics.NEWS.name, rate, False), daemon=True)
    sender.start()
    while sender.is_alive() or _stored(services, prefix) < n:
        rss.append(tree_rss_mib(worker.process.pid)[0])
        time.sleep(0.5)
    latencies = [float(r[0]) for r in services.rows(
        "select extract(epoch from processed_at - event_time) from news_articles where id like :p", p=f"{prefix}-%")]
    return {"events_per_s": round(rate, 1), "events": n, "p50_s": round(percentile(latencies, 0.5), 3),
            "p99_s": round(percentile(latencies, 0.99), 3), "rss_mib_median": round(sorted(rss)[len(rss) // 2], 1)}


def _burst(services, worker, steady_rate: float, seconds: float = 20.0, factor: int = 10) -> dict:
    """``factor`` x the steady rate for ``seconds``, produced at once; the worker's peak RSS meanwhile."""
    n = int(steady_rate * factor * seconds)
    peak = 0.0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mib(worker.process.pid)[0])
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    events = timed_events(n, "burst")
    produce(services.bootstrap, topics.NEWS.name, [json.dumps(e).encode() for e in events], [e["id"].encode() for e in events])
    wait_until(lambda: _stored(services, "burst") >= n, timeout=1800, interval=0.5, message="burst stored")
    done.set()
    sampler.join()
    return {"burst_events": n, "burst_factor": factor, "burst_peak_rss_mib": round(peak, 1)}


def main(n_events: int = 1500, latency_seconds: float = 40.0, loads: tuple[float, ...] = (0.5,),
         burst: bool = False, rounds: int = 3, naive_texts: list[str] | None = None) -> dict:
    from models.analysis import Analyzer
    from schemas.events import NewsEvent

    settings = get_settings()
    folder = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
    services = start_services(folder)
    worker = Worker(services, folder, SENTINEL_AGENTS="news").start().wait_assigned()
    analyzer = Analyzer.from_settings(settings)
    analyzer.warm_up()
    texts = [NewsEvent.model_validate(e).content for e in timed_events(640, "model")]
    at_load: dict[str, dict] = {}
    extra: dict = {}
    try:
        # Model-only and end-to-end alternate, with the stack up (idle) during model-only, and each
        # end-to-end round is compared with the model-only rounds just before and after it: the
        # machine's speed drifts by ±10 % within minutes.
        naive = Naive() if naive_texts else None
        model_rates = [model_only(analyzer, texts, settings.max_batch)]
        naive_rates = [naive.rate(naive_texts)] if naive else []
        e2e_rates, in_worker_rates = [], []
        for r in range(rounds):
            console.print(f"round {r + 1}/{rounds}: model-only {model_rates[-1]:.1f} events/s; "
                          f"end-to-end: {n_events} events produced at once …")
            busy_before = model_busy_seconds(worker.metrics())
            e2e_rates.append(backlog_rate(services, f"e2e{r}", timed_events(n_events, f"e2e{r}", seed=21 + r)))
            in_worker_rates.append(n_events / (model_busy_seconds(worker.metrics()) - busy_before))
            model_rates.append(model_only(analyzer, texts, settings.max_batch))
            if naive:
                naive_rates.append(naive.rate(naive_texts))
            console.print(f"round {r + 1}/{rounds}: end-to-end {e2e_rates[-1]:.1f} events/s, the worker's models "
                          f"{in_worker_rates[-1]:.1f} events/s; model-only after {model_rates[-1]:.1f} events/s")
        ratios = [e2e / ((model_rates[i] + model_rates[i + 1]) / 2) for i, e2e in enumerate(e2e_rates)]
        e2e_rate = statistics.median(e2e_rates)
        for load in loads:
            console.print(f"latency at {load:.0%} of the end-to-end rate for {latency_seconds:g} s …")
            at_load[f"{load:.0%}"] = _at_load(services, worker, e2e_rate * load, latency_seconds,
                                              f"lat{int(load * 100)}")
        if burst:
            steady = at_load.get("50%") or _at_load(services, worker, e2e_rate / 2, latency_seconds, "lat50")
            console.print("burst: 10x the 50% load at once …")
            extra = {**_burst(services, worker, steady["events_per_s"]), "steady_rss_mib": steady["rss_mib_median"]}
            extra["burst_peak_to_steady_rss"] = round(extra["burst_peak_rss_mib"] / extra["steady_rss_mib"], 3)
    finally:
        worker.stop()
        services.broker.stop()
        services.postgres.stop()

    result = {
        "events": n_events, "rounds": rounds, "max_batch": settings.max_batch, "max_wait_s": settings.max_wait,
        "token_budget": settings.token_budget, "parallel_tasks": settings.parallel_tasks,
        "served_dtype": str(analyzer.sentiment.loaded.dtype).removeprefix("torch."),
        "mean_text_chars": round(sum(len(t) for t in texts) / len(texts), 1),
        "model_only_rounds_events_per_s": [round(x, 1) for x in model_rates],
        "end_to_end_rounds_events_per_s": [round(x, 1) for x in e2e_rates],
        "ratio_rounds": [round(x, 3) for x in ratios],
        "model_only_events_per_s": round(statistics.median(model_rates), 1),
        "end_to_end_events_per_s": round(e2e_rate, 1),
        "ratio_end_to_end_to_model": round(statistics.median(ratios), 3),
        "in_worker_model_events_per_s": round(statistics.median(in_worker_rates), 1),
        "ratio_end_to_end_to_in_worker_model": round(
            statistics.median(e / w for e, w in zip(e2e_rates, in_worker_rates)), 3),
    }
    if naive_rates:
        naive_ratios = [e2e / ((naive_rates[i] + naive_rates[i + 1]) / 2) for i, e2e in enumerate(e2e_rates)]
        result.update({"naive_rounds_messages_per_s": [round(x, 2) for x in naive_rates],
                       "naive_messages_per_s": round(statistics.median(naive_rates), 2),
                       "ratio_to_naive_rounds": [round(x, 2) for x in naive_ratios],
                       "ratio_end_to_end_to_naive": round(statistics.median(naive_ratios), 2)})
    for load, figures in at_load.items():
        result.update({f"load_{load}_{k}": v for k, v in figures.items()})
    result.update(extra)
    print_table("news pipeline, embedded Tansu + PostgreSQL, one worker",
                {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in result.items()})
    console.print(f"written to {save('pipeline', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--latency-seconds", type=float, default=40.0)
    parser.add_argument("--loads", default="0.5", help="comma-separated shares of the end-to-end rate")
    parser.add_argument("--burst", action="store_true", help="also measure peak RSS under a 10x burst")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end runs, each between two model-only runs")
    args = parser.parse_args()
    main(args.events, args.latency_seconds, tuple(float(x) for x in args.loads.split(",")), args.burst, args.rounds)
