"""Soak: a worker with both agents, news at half its measured capacity and chat flowing, for a long run;
RSS and latency must stay flat and every event must be stored once.

1. capacity: a backlog of ``--probe`` news events produced at once; events/s to the last commit;
2. soak: news replayed at half that rate and chat messages at ``--chat-rate`` for ``--minutes``;
   every ``--every`` seconds the RSS of the worker with its chat model process (and of each) and the p50/p99 news latency (Kafka record time to
   database write) of the events stored since the last sample;
3. the slope of each series (least squares, per minute) after the warm-up; the first
   ``--warmup`` minutes (allocator, caches) are reported, not fitted.

``--probe-python`` runs the worker with ``bench/memprobe`` (tracemalloc): its Python heap is then
sampled too, which tells Python objects from native memory (it slows the worker: diagnosis only).

Run: ``python -m bench.soak [--minutes 60]``. Results: ``docs/bench/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from schemas import topics
from agents.demo import CHAT_FILE
from agents.replay import replay
from bench.common import percentile, print_table, save
from bench.pipeline import backlog_rate, timed_events
from infra.harness import Worker, start_services, tree_rss_mib, wait_until
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


def chat_messages(n: int) -> list[bytes]:
    """``n`` customer messages with unique ids, cycling through the demo's written messages."""
    texts = [json.loads(line)["text"] for line in CHAT_FILE.read_text().splitlines() if line.strip()]
    return [json.dumps({"id": f"soakchat-{i}", "conversation_id": f"soakconv-{i % 500}",
                        "text": texts[i % len(texts)]}).encode() for i in range(n)]


def python_heap(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(minutes: float = 60.0, every: float = 30.0, probe: int = 800, warmup_minutes: float = 5.0,
         chat_rate: float = 0.5, probe_python: bool = False) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="sentinel-soak-"))
    services = start_services(folder)
    env = {"SENTINEL_AGENTS": "news,chat", "SENTINEL_CHAT_OPENING": "generated"}  # the heavier chat path
    heap_file = folder / "python-heap.jsonl"
    if probe_python:
        env |= {"PYTHONPATH": str(Path(__file__).parent / "memprobe"), "SENTINEL_MEMPROBE_FILE": str(heap_file),
                "SENTINEL_MEMPROBE_EVERY": str(max(every, 120.0))}  # a snapshot holds the interpreter lock
    worker = Worker(services, folder, **env).start(ready_timeout=400).wait_assigned()
    if probe_python:
        Path(f"{heap_file}.start").touch()  # trace from here on: the models are loaded
    samples: list[dict] = []
    try:
        console.print(f"capacity: {probe} events produced at once …")
        capacity = backlog_rate(services, "probe", timed_events(probe, "probe", seed=41))
        rate = capacity / 2
        n = int(rate * minutes * 60)
        console.print(f"capacity {capacity:.1f} events/s; soak: {n} events at {rate:.1f}/s for {minutes:g} min")
        values = [json.dumps(e).encode() for e in timed_events(n, "soak", seed=41)]
        chats = chat_messages(int(chat_rate * minutes * 60))
        sender = threading.Thread(target=replay, args=(values, services.bootstrap, topics.NEWS.name, rate, False), daemon=True)
        chat_sender = threading.Thread(target=replay, args=(chats, services.bootstrap, topics.CHAT.name, chat_rate, False),
                                       daemon=True)
        soak_start = time.time()
        sender.start()
        chat_sender.start()
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
                total, own = tree_rss_mib(worker.process.pid)
                sample = {"t_s": round(now - soak_start, 1), "rss_mib": round(total, 1),
                          "worker_rss_mib": round(own, 1), "models_rss_mib": round(total - own, 1),
                          "events": len(latencies), "p50_s": round(percentile(latencies, 0.5), 3),
                          "p99_s": round(percentile(latencies, 0.99), 3)}
                samples.append(sample)
                bar.update(task, completed=min(now - soak_start, minutes * 60),
                           info=f"RSS {sample['rss_mib']:.0f} MiB, p99 {sample['p99_s']:.2f} s")
                if not sender.is_alive() and not chat_sender.is_alive() and now - soak_start >= minutes * 60:
                    break
        wait_until(lambda: services.scalar("select count(*) from news_articles where id like 'soak-%'") >= n
                   and services.scalar("select count(*) from chat_messages where id like 'soakchat-%'") >= len(chats),
                   timeout=300, interval=2, message="the last events stored")
        stored = services.scalar("select count(*) from news_articles where id like 'soak-%'")
        chat_stored = services.scalar("select count(*) from chat_messages where id like 'soakchat-%'")
        drafts = services.scalar("select count(*) from reply_drafts where message_id like 'soakchat-%'")
        dead = services.scalar("select count(*) from dead_letters")
    finally:
        worker.stop()
        services.broker.stop()
        services.postgres.stop()

    fitted = [s for s in samples if s["t_s"] >= warmup_minutes * 60 and s["events"]]
    rss_slope = slope_per_minute([(s["t_s"], s["rss_mib"]) for s in fitted])
    p99_slope = slope_per_minute([(s["t_s"], s["p99_s"]) for s in fitted])
    heap = python_heap(heap_file)
    heap_fitted = [(h["t_s"], h["python_heap_mib"]) for h in heap if h["t_s"] >= warmup_minutes * 60]
    result = {
        "minutes": minutes, "agents": "news,chat", "capacity_events_per_s": round(capacity, 1),
        "load_events_per_s": round(rate, 1), "chat_messages_per_s": chat_rate,
        "events_sent": n, "events_stored": stored, "chat_sent": len(chats), "chat_stored": chat_stored,
        "reply_drafts": drafts, "dead_letters": dead, "sample_every_s": every,
        "warmup_minutes_not_fitted": warmup_minutes,
        "rss_mib_first_fitted": fitted[0]["rss_mib"] if fitted else None,
        "rss_mib_last": samples[-1]["rss_mib"] if samples else None,
        "rss_slope_mib_per_min": round(rss_slope, 3),
        "worker_rss_slope_mib_per_min": round(slope_per_minute([(s["t_s"], s["worker_rss_mib"]) for s in fitted]), 3),
        "models_rss_slope_mib_per_min": round(slope_per_minute([(s["t_s"], s["models_rss_mib"]) for s in fitted]), 3),
        "p50_s_median_of_samples": percentile([s["p50_s"] for s in fitted], 0.5) if fitted else None,
        "p99_s_median_of_samples": percentile([s["p99_s"] for s in fitted], 0.5) if fitted else None,
        "p99_slope_s_per_min": round(p99_slope, 4),
    }
    if probe_python:
        result["python_heap_slope_mib_per_min"] = round(slope_per_minute(heap_fitted), 3)
        result["python_heap_mib_last"] = heap[-1]["python_heap_mib"] if heap else None
    print_table(f"soak: news at half capacity with chat flowing, {minutes:g} min", result)
    name = "soak-probe" if probe_python else "soak"
    console.print(f"written to {save(name, {**result, 'samples': samples, 'python_heap': heap})}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--probe", type=int, default=800, help="events in the capacity probe")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes reported but not fitted")
    parser.add_argument("--chat-rate", type=float, default=0.5, help="chat messages per second during the soak")
    parser.add_argument("--probe-python", action="store_true",
                        help="trace the worker's Python heap (tracemalloc; slows it: diagnosis only)")
    args = parser.parse_args()
    main(args.minutes, args.every, args.probe, args.warmup, args.chat_rate, args.probe_python)
