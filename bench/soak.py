"""Soak: the news worker at half its measured capacity for a long run; RSS and latency must stay flat.

1. capacity: a backlog of ``--probe`` events produced at once; events/s to the last commit;
2. soak: events replayed at half that rate for ``--minutes``; every ``--every`` seconds the
   worker's RSS and the p50/p99 latency (Kafka record time to database write) of the events
   stored since the last sample;
3. the slope of each series (least squares, per minute) over the second half-onward; the first
   minutes are warm-up (allocator, caches) and reported, not fitted.

Run: ``python -m bench.soak [--minutes 30]``. Results: ``docs/bench/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from agents.replay import replay
from bench.common import percentile, print_table, save
from bench.pipeline import backlog_rate, timed_events
from infra.harness import Worker, rss_mib, start_services
from infra.progress import console, progress


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value units per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / sxx if sxx else 0.0


def main(minutes: float = 30.0, every: float = 30.0, probe: int = 800, warmup_minutes: float = 3.0) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="sentinel-soak-"))
    services = start_services(folder)
    worker = Worker(services, folder, SENTINEL_AGENTS="news").start().wait_assigned()
    samples: list[dict] = []
    try:
        console.print(f"capacity: {probe} events produced at once …")
        capacity = backlog_rate(services, "probe", timed_events(probe, "probe", seed=41))
        rate = capacity / 2
        n = int(rate * minutes * 60)
        console.print(f"capacity {capacity:.1f} events/s; soak: {n} events at {rate:.1f}/s for {minutes:g} min")
        values = [json.dumps(e).encode() for e in timed_events(n, "soak", seed=41)]
        sender = threading.Thread(target=replay, args=(values, services.bootstrap, "news", rate, False), daemon=True)
        soak_start = time.time()
        sender.start()
        since = soak_start
        with progress() as bar:
            task = bar.add_task("soak", total=int(minutes * 60), info="")
            while True:
                time.sleep(every)
                now = time.time()
                latencies = [float(r[0]) for r in services.rows(
                    "select extract(epoch from processed_at - event_time) from news_articles "
                    "where id like 'soak-%' and processed_at > to_timestamp(:a) and processed_at <= to_timestamp(:b)",
                    a=since, b=now)]
                since = now
                sample = {"t_s": round(now - soak_start, 1), "rss_mib": round(rss_mib(worker.process.pid), 1),
                          "events": len(latencies), "p50_s": round(percentile(latencies, 0.5), 3),
                          "p99_s": round(percentile(latencies, 0.99), 3)}
                samples.append(sample)
                bar.update(task, completed=min(now - soak_start, minutes * 60),
                           info=f"RSS {sample['rss_mib']:.0f} MiB, p99 {sample['p99_s']:.2f} s")
                if not sender.is_alive() and now - soak_start >= minutes * 60:
                    break
        stored = services.scalar("select count(*) from news_articles where id like 'soak-%'")
    finally:
        worker.stop()
        services.broker.stop()
        services.postgres.stop()

    fitted = [s for s in samples if s["t_s"] >= warmup_minutes * 60 and s["events"]]
    rss_slope = slope_per_minute([(s["t_s"], s["rss_mib"]) for s in fitted])
    p99_slope = slope_per_minute([(s["t_s"], s["p99_s"]) for s in fitted])
    result = {
        "minutes": minutes, "capacity_events_per_s": round(capacity, 1), "load_events_per_s": round(rate, 1),
        "events_sent": n, "events_stored": stored, "sample_every_s": every,
        "warmup_minutes_not_fitted": warmup_minutes,
        "rss_mib_first_fitted": fitted[0]["rss_mib"] if fitted else None,
        "rss_mib_last": samples[-1]["rss_mib"] if samples else None,
        "rss_slope_mib_per_min": round(rss_slope, 3),
        "p50_s_median_of_samples": percentile([s["p50_s"] for s in fitted], 0.5) if fitted else None,
        "p99_s_median_of_samples": percentile([s["p99_s"] for s in fitted], 0.5) if fitted else None,
        "p99_slope_s_per_min": round(p99_slope, 4),
    }
    print_table(f"soak: news worker at half capacity for {minutes:g} min", result)
    console.print(f"written to {save('soak', {**result, 'samples': samples})}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--probe", type=int, default=800, help="events in the capacity probe")
    args = parser.parse_args()
    main(args.minutes, args.every, args.probe)
