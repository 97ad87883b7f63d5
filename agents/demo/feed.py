"""The demo and test feed: fictional companies, headlines written for this project.

``generate`` is deterministic for a seed: a calm mix of positive, neutral and
negative headlines over many companies, plus (optionally) a burst of bad news
about one company starting at a given event.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

FEED_FILE = Path(__file__).resolve().parent / "news_feed.jsonl"
BURST_COMPANY = ("Harrow Logistics", "HRWL", "NASDAQ")

COMPANIES = [
    ("Veltro Energy", "VLTR", "NYSE"), ("Nordwind Bank", "NWB", "NASDAQ"), ("Calder Mining", "CLDM", "NYSE"),
    ("Brightwell Pharma", "BRWP", "NASDAQ"), ("Ostrava Steel", "OSTS", "NYSE"), ("Lumen Grove Foods", "LGF", "NYSE"),
    ("Pellam Motors", "PELM", "NASDAQ"), ("Quayside Retail", "QSR", "NYSE"), ("Sable Telecom", "SBLT", "NASDAQ"),
    ("Tarnwick Insurance", "TRWK", "NYSE"), ("Umbra Software", "UMBR", "NASDAQ"), ("Westmere Paper", "WSTP", "NYSE"),
    ("Kestrel Aerospace", "KSTR", "NYSE"), ("Finchley Chemicals", "FNCH", "NASDAQ"), ("Ivory Coast Shipping", "ICSH", "NYSE"),
    ("Gallant Semiconductors", "GLNT", "NASDAQ"), ("Redfern Utilities", "RDFN", "NYSE"), ("Marisol Hotels", "MRSL", "NYSE"),
    ("Oakhurst Media", "OAKM", "NASDAQ"), ("Dunmore Brewing", "DNMR", "NYSE"), ("Ashby Robotics", "ASHR", "NASDAQ"),
    ("Corran Biotech", "CRRN", "NASDAQ"), ("Elmstead Railways", "ELMR", "NYSE"), ("Halvard Timber", "HLVT", "NYSE"),
    BURST_COMPANY,
]
PEOPLE = ["Maria Lindqvist", "David Okafor", "Helen Brandt", "Tomas Varga", "Aiko Tanaka", "Rahul Mehta"]
PLACES = ["Helsinki", "London", "Frankfurt", "Chicago", "Singapore", "Toronto", "Madrid", "Oslo"]

POSITIVE = [
    "{c} raises full-year profit forecast after record quarter",
    "{c} net sales rose {p}% as demand in {place} strengthened",
    "{c} wins a large multi-year contract in {place}",
    "{c} operating profit increased to EUR {m} million from EUR {m2} million",
    "{c} shares jump after {person} unveils expansion plan",
    "{c} beats analyst expectations and lifts its dividend",
]
NEUTRAL = [
    "{c} to publish its interim report on {day}",
    "{c} appoints {person} as chief financial officer",
    "{c} will hold its annual general meeting in {place}",
    "{c} completes the previously announced reorganisation of its {place} unit",
    "{c} says its board will meet next week to discuss the agenda",
    "{c} moves its regional office to {place}",
]
NEGATIVE = [
    "{c} cuts {n} jobs in {place} as orders slump",
    "{c} issues profit warning after sales fell {p}%",
    "{c} operating loss widened to EUR {m} million",
    "{c} shares plunge after regulator opens fraud probe",
    "{c} halts production in {place} after a serious accident",
    "{c} misses forecasts and suspends its dividend",
]
# The crisis: distinct bad-news stories about one company (a desk counts stories, not reprints);
# a burst longer than this list repeats them as reprints with small edits.
BURST = [
    "{c} shares plunge after auditors refuse to sign off accounts",
    "{c} faces fraud investigation over inflated revenue",
    "{c} issues second profit warning in a month as losses mount",
    "{c} chief executive {person} resigns amid accounting scandal",
    "{c} credit rating cut to junk as debt concerns deepen",
    "{c} lays off {n} workers and closes its {place} hub",
    "Lenders pull credit lines from {c} after missed payment",
    "{c} warns it may breach loan covenants after sales collapse",
    "Customers sue {c} over parcels lost in {place}",
    "{c} bonds slide to record low on default fears",
    "Regulator fines {c} for safety failures at its {place} depot",
    "{c} suspends deliveries after fire at main warehouse",
    "Analysts expect {c} quarterly loss to double",
    "{c} auditor resigns citing missing invoices",
    "Pension fund dumps its entire stake in {c}",
    "{c} scraps dividend and seeks emergency funding",
]


def _fill(template: str, company: tuple[str, str, str], rng: random.Random) -> str:
    name, ticker, exchange = company
    text = template.format(c=name, p=rng.randint(3, 40), place=rng.choice(PLACES), m=rng.randint(5, 400),
                           m2=rng.randint(5, 400), person=rng.choice(PEOPLE), n=rng.randint(50, 3000),
                           day=rng.choice(["Monday", "Tuesday", "Thursday"]))
    if rng.random() < 0.3:
        text = text.replace(name, f"{name} ({exchange}: {ticker})", 1)
    elif rng.random() < 0.2:
        text += f" ${ticker}"
    return text


def generate(n: int = 300, seed: int = 7, burst_at: int | None = 200, burst_size: int = 30,
             start: datetime = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc), spacing_s: float = 60.0,
             burst_spacing_s: float | None = None, prefix: str = "demo") -> list[dict]:
    """``n`` calm headlines, with ``burst_size`` bad-news headlines about the burst company
    inserted from position ``burst_at`` on (``None`` = no burst). Event times advance by
    ``spacing_s`` (``burst_spacing_s`` inside the burst)."""
    rng = random.Random(seed)
    events: list[dict] = []
    when = start
    burst_spacing = spacing_s if burst_spacing_s is None else burst_spacing_s
    calm_left = n
    burst_left = burst_size if burst_at is not None else 0
    burst_order = rng.sample(BURST, len(BURST))
    i = 0
    while calm_left or burst_left:
        in_burst = burst_at is not None and i >= burst_at and burst_left > 0 and (rng.random() < 0.7 or not calm_left)
        if in_burst:
            company, sentiment = BURST_COMPANY, "negative"
            template = burst_order[(burst_size - burst_left) % len(burst_order)]
            burst_left -= 1
            when += timedelta(seconds=burst_spacing)
        else:
            company = rng.choice(COMPANIES)
            sentiment = rng.choices(["positive", "neutral", "negative"], weights=[3, 5, 2])[0]
            template = rng.choice({"positive": POSITIVE, "neutral": NEUTRAL, "negative": NEGATIVE}[sentiment])
            calm_left -= 1
            when += timedelta(seconds=spacing_s)
        title = _fill(template, company, rng)
        # burst headlines carry a "b" in their id, so tests and the demo can tell them apart
        events.append({"id": f"{prefix}-{i:05d}{'b' if in_burst else ''}", "title": title,
                       "text": f"{title}. The company said in a statement released in {rng.choice(PLACES)}.",
                       "source": rng.choice(["Sentinel Wire", "Market Desk", "Daily Ledger"]),
                       "published_at": when.isoformat(), "tickers": [company[1]]})
        i += 1
    return events


def write_feed(path: Path = FEED_FILE) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for event in generate():
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    print(write_feed())
