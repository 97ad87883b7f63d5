"""The live demo: replay the shipped news feed and customer messages, and follow the enriched headlines,
reply drafts and alerts as they arrive."""

from __future__ import annotations

import json
import time

from rich.markup import escape

from agents.demo.feed import FEED_FILE
from infra.kafka import follow
from schemas import records, topics

CHAT_FILE = FEED_FILE.with_name("chat_messages.jsonl")

COLOURS = {"negative": "red", "neutral": "white", "positive": "green"}


def _replay_all(bootstrap: str, news: list[bytes], chat: list[bytes], rate: float) -> None:
    from agents.replay import replay

    replay(news, bootstrap, topics.NEWS.name, rate, False)
    replay(chat, bootstrap, topics.CHAT.name, rate, False)


def run_demo(stack, console, rate: float = 40.0, idle_timeout: float = 240.0) -> dict:
    """Replay the demo feed into `news` and the demo chat messages into `chat`; print each enriched headline,
    reply draft and alert as it arrives; return the counts."""
    import threading

    from agents.replay import read_events

    news = read_events(FEED_FILE)
    chat = read_events(CHAT_FILE)
    asked = {m["id"]: m["text"] for m in map(json.loads, chat)}
    bootstrap = stack.settings.kafka_bootstrap
    console.print(f"replaying {len(news)} demo headlines ({FEED_FILE.name}) and {len(chat)} customer messages "
                  f"({CHAT_FILE.name}) at {rate:.0f}/s …")
    consumer = follow(bootstrap, [topics.NEWS_ENRICHED.name, topics.CHAT_REPLIES.name, topics.ALERTS.name])
    threading.Thread(target=_replay_all, args=(bootstrap, news, chat, rate), daemon=True).start()
    seen: set[str] = set()
    replied: set[str] = set()
    alerts = 0
    last = time.monotonic()
    while (len(seen) < len(news) or len(replied) < len(chat)) and time.monotonic() - last < idle_timeout:
        for record in consumer:
            last = time.monotonic()
            if record.topic == topics.ALERTS.name:
                alert = records.AlertMessage.model_validate_json(record.value)
                alerts += 1
                console.print(f"[bold red]ALERT[/] {escape(alert.kind)} {escape(alert.key)} "
                              f"severity={escape(alert.severity)}: {escape(alert.summary)}", highlight=False)
            elif record.topic == topics.CHAT_REPLIES.name:
                reply = records.ChatReply.model_validate_json(record.value)
                if reply.message_id in replied:
                    continue
                replied.add(reply.message_id)
                show_reply(console, reply.model_dump(), asked.get(reply.message_id, ""))
            else:
                article = records.NewsEnriched.model_validate_json(record.value)
                if article.id in seen:
                    continue
                seen.add(article.id)
                s = article.sentiment
                ents = escape(", ".join(f"{e.text}/{e.label}" for e in article.entities))
                headline = escape((article.title or article.text or "")[:90])
                console.print(f"[{COLOURS[s.label]}]{s.label:>8} {s.score:.2f}[/] {headline}"
                              f"  [dim]{ents}[/]", highlight=False)
    consumer.close()
    console.print(f"\n[bold]{len(seen)}[/] headlines enriched, [bold]{len(replied)}[/] reply drafts, "
                  f"[bold]{alerts}[/] alerts.")
    if not alerts and _stored_alerts(stack.settings.database_url):
        console.print("no new alert: this state folder already holds the alerts these headlines raised in an "
                      "earlier run (an episode is never opened twice). `sentinel alerts` lists them; "
                      "`make clean` starts afresh.")
    console.print(f"database: {stack.status()['database_url']}\nmetrics:  {stack.metrics_url}\n"
                  "stop with Ctrl-C")
    return {"enriched": len(seen), "replies": len(replied), "alerts": alerts}


def _stored_alerts(database_url: str) -> int:
    from sqlalchemy import text

    from infra.db import make_engine

    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return conn.execute(text("select count(*) from alerts")).scalar()
    finally:
        engine.dispose()


def show_reply(console, reply: dict, asked: str) -> None:
    flag = (f"[bold red]escalate: {escape(str(reply.get('escalation_reason')))}[/]" if reply.get("escalate")
            else "[green]draft ready[/]")
    draft = " ".join(reply["draft"].split())
    console.print(f"[bold cyan]CHAT[/] {escape(reply['conversation_id'])} [dim]{escape(reply['intent'])} "
                  f"{reply['intent_score']:.2f}[/] {flag}\n"
                  f"  customer: {escape(asked)}\n  draft:    {escape(draft[:240])}{'…' if len(draft) > 240 else ''}",
                  highlight=False)
