"""A slow agent beside the news, and what the fetch cap costs, with and without it, in one run.

For each setting of ``SENTINEL_MAX_POLL_RECORDS`` (``0``: the cap derived in ``agents/app.py``; ``1000000``:
no cap, Faust's fetches as before), alternately, ``--rounds`` times, each on a fresh embedded stack:

1. **behind chat**: a worker running both agents; ``--chat`` banking77 test messages produced at once, then, once
   chat has stored its first draft, ``--news`` Reuters headlines with their descriptions: seconds until every
   article is stored, and the chat messages still waiting then (``infra.harness.news_behind_chat``);
2. **news alone**: a worker running news only; ``--events`` demo-feed events produced at once: events/s from
   the first produce to the last stored article (``bench.pipeline.backlog_rate``).

Run: ``python -m bench.agents_apart --data ../shared/data [--rounds 2] [--chat 3000] [--news 100] [--events 1500]``.
Writes ``docs/bench/agents_apart.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.common import print_table, save
from bench.pipeline import backlog_rate, timed_events
from infra.harness import Worker, news_behind_chat, start_services
from infra.progress import console

SETTINGS = {"capped": "0", "uncapped": "1000000"}


def one(setting: str, what: str, data: Path, args, round_: int) -> dict | float:
    with tempfile.TemporaryDirectory(prefix="sentinel-apart-") as folder:
        services = start_services(Path(folder))
        agents = "news,chat" if what == "behind_chat" else "news"
        worker = Worker(services, Path(folder), SENTINEL_AGENTS=agents,
                        SENTINEL_MAX_POLL_RECORDS=SETTINGS[setting]).start().wait_assigned()
        try:
            if what == "behind_chat":
                return news_behind_chat(services, data, args.chat, args.news, timeout=1800)
            return round(backlog_rate(services, f"r{round_}", timed_events(args.events, f"r{round_}")), 1)
        finally:
            worker.stop()
            services.broker.stop()
            services.postgres.stop()


def main(args) -> dict:
    runs: dict[str, dict[str, list]] = {s: {"behind_chat": [], "news_alone": []} for s in SETTINGS}
    for round_ in range(args.rounds):
        for what in ("behind_chat", "news_alone"):
            for setting in SETTINGS:
                console.print(f"round {round_ + 1}/{args.rounds}: {what}, {setting} ...")
                runs[setting][what].append(one(setting, what, args.data, args, round_))
                console.print(f"  {runs[setting][what][-1]}")
    ratios = [round(c / u, 3) for c, u in zip(runs["capped"]["news_alone"], runs["uncapped"]["news_alone"])]
    result = {"chat": args.chat, "news": args.news, "events": args.events, "rounds": args.rounds,
              "settings": {s: f"SENTINEL_MAX_POLL_RECORDS={v}" for s, v in SETTINGS.items()}, "runs": runs,
              "news_alone_capped_over_uncapped": ratios,
              "news_alone_ratio_median": statistics.median(ratios)}
    print_table("news behind a chat backlog, and news alone: fetch cap on and off",
                {f"{s} {w}": ", ".join(map(str, v)) for s, by in runs.items() for w, v in by.items()}
                | {"news alone, capped / uncapped, per round": ", ".join(map(str, ratios))})
    console.print(f"written to {save('agents_apart', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (banking77, news_headlines)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chat", type=int, default=3000)
    parser.add_argument("--news", type=int, default=100)
    parser.add_argument("--events", type=int, default=1500)
    main(parser.parse_args())
