"""The live demo: replay the shipped feed and follow the enriched results and alerts as they arrive."""

from __future__ import annotations

import json
import time

from agents.demo.feed import FEED_FILE

COLOURS = {"negative": "red", "neutral": "white", "positive": "green"}


def follow(bootstrap: str, topics: list[str]):
    """A consumer of ``topics`` from their start, outside any group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=1000)
    partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


def run_demo(stack, console, rate: float = 40.0, idle_timeout: float = 240.0) -> dict:
    """Replay the demo feed into `news`, print each enriched headline and alert; return the counts."""
    from agents.replay import read_events, replay

    values = read_events(FEED_FILE)
    bootstrap = stack.settings.kafka_bootstrap
    console.print(f"replaying {len(values)} demo headlines from {FEED_FILE.name} at {rate:.0f}/s …")
    consumer = follow(bootstrap, ["news.enriched", "alerts"])
    import threading

    sender = threading.Thread(target=replay, args=(values, bootstrap, "news", rate, False), daemon=True)
    sender.start()
    seen: set[str] = set()
    alerts = 0
    last = time.monotonic()
    while len(seen) < len(values) and time.monotonic() - last < idle_timeout:
        for record in consumer:
            last = time.monotonic()
            event = json.loads(record.value)
            if record.topic == "alerts":
                alerts += 1
                console.print(f"[bold red]ALERT[/] {event.get('kind')} {event.get('key')} "
                              f"severity={event.get('severity')}: {event.get('summary', '')}")
                continue
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            s = event["sentiment"]
            ents = ", ".join(f"{e['text']}/{e['label']}" for e in event["entities"])
            console.print(f"[{COLOURS[s['label']]}]{s['label']:>8} {s['score']:.2f}[/] {event['title'][:90]}"
                          f"  [dim]{ents}[/]", highlight=False)
    consumer.close()
    console.print(f"\n[bold]{len(seen)}[/] headlines enriched, [bold]{alerts}[/] alerts.")
    console.print(f"database: {stack.status()['database_url']}\nmetrics:  {stack.metrics_url}\n"
                  "stop with Ctrl-C")
    return {"enriched": len(seen), "alerts": alerts}
