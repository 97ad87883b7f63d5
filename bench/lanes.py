"""News latency while chat generates: one worker with the default agents (news, chat), in one run.

1. capacity: a backlog of ``--probe`` news events produced at once; events/s to the last commit
   (the chat agent is loaded and idle, its generator warmed up by a few messages first);
2. phase A, news alone: news events replayed at ``--load`` (50%) of that capacity for
   ``--seconds``; p50/p99 from the Kafka record time to the database write;
3. phase B, news + chat: the same news rate for the same time while a second thread replays
   customer messages to ``chat`` at ``--chat-rate`` messages/s (unique message and
   conversation ids), enough to keep the generator busy the whole phase; news p50/p99, their
   ratio to phase A, the reply drafts stored during B and the chat messages' own p50/p99
   (Kafka record time to database write), and the worker's RSS.

Each agent has its own lane (model thread and database thread); chat's models run in a child
process of their own at a lower CPU priority (``agents.worker.CHAT_NICENESS``). RSS is the
worker's with that process.

Run: ``python -m bench.lanes [--seconds 60] [--chat-rate 2] [--probe 600]``.
Results: ``docs/bench/lanes.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from schemas import topics
from agents.replay import replay
from bench.common import percentile, print_table, save
from bench.pipeline import _at_load, _stored, backlog_rate, timed_events
from infra.harness import Worker, start_services, tree_rss_mib, wait_until
from infra.progress import console, progress
from infra.settings import get_settings

# banking77-like customer messages (written for this benchmark), cycled with unique ids.
CHAT_TEXTS = [
    "My new card still hasn't arrived after ten days, when should I expect it?",
    "I lost my wallet yesterday with my card in it. Can you freeze the card?",
    "Why was I charged a fee for taking cash out at the airport?",
    "The money I transferred to my sister on Friday is still not in her account.",
    "How do I change my PIN? I forgot the old one.",
    "My top-up with a bank transfer has been pending since this morning.",
    "There's a payment in my app from a restaurant I have never visited.",
    "Can I link my card to Google Pay on my phone?",
    "The ATM kept my card and didn't give it back. What do I do now?",
    "What exchange rate do I get when I spend in euros?",
    "I was charged twice for the same coffee this morning.",
    "How long does a transfer to another country usually take?",
    "My card payment was declined at the supermarket but I have money in my account.",
    "I want to close my account, how do I do that?",
    "Can I get a virtual card for online shopping?",
    "I think someone has my card details, there are purchases I did not make.",
    "Why is my balance not updated after the refund from the shop?",
    "How do I verify my identity? The app keeps asking for documents.",
    "Is there a limit on how much I can top up each month?",
    "I moved house, how can I change my address in the app?",
    "My direct debit to the gym went out twice this month.",
    "Which currencies can I hold in my account?",
]


def chat_values(n: int, prefix: str) -> list[bytes]:
    """``n`` chat messages without ``ts`` (event time = Kafka record time), unique message and conversation ids."""
    return [json.dumps({"id": f"{prefix}-{i:05d}", "conversation_id": f"{prefix}-conv-{i:05d}",
                        "customer_id": f"c-{1000 + i % 97}", "channel": ("app", "web", "email")[i % 3],
                        "text": CHAT_TEXTS[i % len(CHAT_TEXTS)]}).encode() for i in range(n)]


def _drafts(services, prefix: str) -> int:
    return services.scalar("select count(*) from reply_drafts where message_id like :p", p=f"{prefix}-%")


def _watch(services, label: str, news_prefix: str, n: int, chat_prefix: str | None, done: threading.Event) -> None:
    """Progress of a phase: news events stored (and chat drafts stored) every second until ``done``."""
    with progress() as bar:
        task = bar.add_task(label, total=n, info="")
        while not done.wait(1.0):
            info = f"chat drafts {_drafts(services, chat_prefix)}" if chat_prefix else ""
            bar.update(task, completed=min(n, _stored(services, news_prefix)), info=info)
        bar.update(task, completed=n, info="")


def _phase(services, worker, label: str, rate: float, seconds: float, news_prefix: str,
           chat_prefix: str | None = None) -> dict:
    n = max(20, int(rate * seconds))
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(services, label, news_prefix, n, chat_prefix, done), daemon=True)
    watcher.start()
    try:
        return _at_load(services, worker, rate, seconds, news_prefix)
    finally:
        done.set()
        watcher.join()


def main(seconds: float = 60.0, chat_rate: float = 2.0, probe: int = 600, load: float = 0.5,
         ready_timeout: float = 400.0) -> dict:
    from agents.worker import CHAT_NICENESS

    settings = get_settings()
    folder = Path(tempfile.mkdtemp(prefix="sentinel-lanes-"))
    console.print("starting the embedded broker and database …")
    services = start_services(folder)
    worker = None
    try:
        console.print("starting one worker with SENTINEL_AGENTS=news,chat (loads the generator) …")
        started = time.monotonic()
        # generated openings: the case where chat's lane is heaviest (drafts default to templates)
        worker = Worker(services, folder, SENTINEL_AGENTS="news,chat",
                        SENTINEL_CHAT_OPENING="generated").start(ready_timeout=ready_timeout)
        worker.wait_assigned()
        console.print(f"worker ready and assigned in {time.monotonic() - started:.0f} s; "
                      "warming up the chat lane with 8 messages …")
        replay(chat_values(8, "warm"), services.bootstrap, topics.CHAT.name, 0, False)
        wait_until(lambda: _drafts(services, "warm") >= 8, timeout=300, interval=0.5, message="8 warm-up drafts")

        console.print(f"capacity: {probe} news events produced at once …")
        capacity = backlog_rate(services, "probe", timed_events(probe, "probe", seed=41))
        rate = capacity * load
        console.print(f"capacity {capacity:.1f} events/s; phase A: news alone at {rate:.1f}/s for {seconds:g} s")
        phase_a = _phase(services, worker, "phase A: news alone", rate, seconds, "lanesA")
        console.print(f"phase A: p50 {phase_a['p50_s']} s, p99 {phase_a['p99_s']} s; phase B: news at {rate:.1f}/s "
                      f"and chat at {chat_rate:g} messages/s for {seconds:g} s")

        n_chat = max(1, int(chat_rate * seconds))
        chat_sender = threading.Thread(target=replay, args=(chat_values(n_chat, "lanes-chat"), services.bootstrap,
                                                            topics.CHAT.name, chat_rate, False), daemon=True)
        b_start = time.time()
        chat_sender.start()
        phase_b = _phase(services, worker, "phase B: news + chat", rate, seconds, "lanesB", "lanes-chat")
        b_end = time.time()  # the last phase-B news event is stored
        chat_sender.join()
        chat = [(float(r[0]), float(r[1])) for r in services.rows(
            "select extract(epoch from processed_at - event_time), extract(epoch from processed_at) "
            "from chat_messages where id like 'lanes-chat-%' and processed_at <= to_timestamp(:b)", b=b_end)]
        drafts_b = services.scalar("select count(*) from reply_drafts where message_id like 'lanes-chat-%' "
                                   "and created_at <= to_timestamp(:b)", b=b_end)
        rss_end = tree_rss_mib(worker.process.pid)[0]
    finally:
        if worker is not None:
            worker.stop()
        services.broker.stop()
        services.postgres.stop()

    chat_latency = [lat for lat, _ in chat]
    result = {
        "agents": "news,chat", "seconds_per_phase": seconds, "load_share_of_capacity": load,
        "max_batch": settings.max_batch, "max_wait_s": settings.max_wait, "token_budget": settings.token_budget,
        "max_length_tokens": settings.max_length, "parallel_tasks": settings.parallel_tasks,
        "generator_max_batch": settings.generator_max_batch,
        "generator_max_new_tokens": settings.generator_max_new_tokens, "chat_niceness": CHAT_NICENESS,
        "probe_events": probe, "capacity_events_per_s": round(capacity, 1),
        "news_events_per_s": phase_a["events_per_s"], "news_events_per_phase": phase_a["events"],
        "a_news_p50_s": phase_a["p50_s"], "a_news_p99_s": phase_a["p99_s"],
        "b_news_p50_s": phase_b["p50_s"], "b_news_p99_s": phase_b["p99_s"],
        "ratio_b_to_a_p50": round(phase_b["p50_s"] / phase_a["p50_s"], 2),
        "ratio_b_to_a_p99": round(phase_b["p99_s"] / phase_a["p99_s"], 2),
        "chat_rate_per_s": chat_rate, "b_chat_messages_sent": n_chat, "b_seconds": round(b_end - b_start, 1),
        "b_chat_drafts_stored": drafts_b, "b_chat_backlog_at_end": n_chat - drafts_b,
        "b_chat_drafts_per_s": round(drafts_b / (b_end - b_start), 2),
        "b_chat_p50_s": round(percentile(chat_latency, 0.5), 2),
        "b_chat_p99_s": round(percentile(chat_latency, 0.99), 2),
        "a_rss_mib_median": phase_a["rss_mib_median"], "b_rss_mib_median": phase_b["rss_mib_median"],
        "rss_mib_end_of_b": round(rss_end, 1),
    }
    print_table("news latency while chat generates: one worker, news + chat, embedded Tansu + PostgreSQL", result)
    console.print(f"written to {save('lanes', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--chat-rate", type=float, default=2.0, help="chat messages/s during phase B")
    parser.add_argument("--probe", type=int, default=600, help="news events in the capacity probe")
    parser.add_argument("--load", type=float, default=0.5, help="news rate as a share of the capacity")
    args = parser.parse_args()
    main(args.seconds, args.chat_rate, args.probe, args.load)
