"""How the desk's pages show things people read: times (an ISO ``<time>`` for the browser to put in the
reader's timezone, with a readable UTC fallback), waiting times, links that may be followed, and an alert's
evidence as a sentence and a table of stories instead of its JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from urllib.parse import urlsplit

from markupsafe import Markup, escape


# -- times ----------------------------------------------------------------------------------------------
def as_time(value) -> datetime | None:
    """A datetime from a datetime or an ISO 8601 string (naive ones read as UTC); None when it is neither."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def readable_utc(moment: datetime) -> str:
    """``07 Dec 2026 04:32 UTC``: what a page shows before (or without) its script."""
    return moment.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")


def time_tag(value) -> Markup:
    """``<time class="when" datetime="ISO">07 Dec 2026 04:32 UTC</time>``; desk.js rewrites the text in the
    reader's timezone with a relative "12 min ago". Anything that is not a time is shown as escaped text."""
    moment = as_time(value)
    if moment is None:
        return escape("" if value is None else str(value))
    iso = moment.astimezone(UTC).isoformat()
    return Markup('<time class="when" datetime="{}" title="{}">{}</time>').format(iso, iso, readable_utc(moment))


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``: a wait as people say it."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def waiting_tag(since, now: datetime) -> Markup:
    """``<time class="since" datetime="ISO">12 min</time>``: how long something has waited (desk.js keeps it
    current while the page stays open)."""
    moment = as_time(since)
    if moment is None:
        return Markup("")
    return Markup('<time class="since" datetime="{}">{}</time>').format(
        moment.astimezone(UTC).isoformat(), duration((now - moment).total_seconds()))


# -- links and ids --------------------------------------------------------------------------------------
def http_url(value) -> str | None:
    """The URL when it is an absolute http(s) URL with a host, else None: only these become links
    (``javascript:``, ``data:`` and relative URLs stay text)."""
    if not isinstance(value, str) or len(value) > 2048 or any(c.isspace() or ord(c) < 32 for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def dom_id(value) -> str:
    """A fixed-form id for an element that stands for ``value`` (a message id may hold any character)."""
    return "m" + sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:16]


# -- an alert's evidence --------------------------------------------------------------------------------
@dataclass
class StoryRow:
    time: datetime | None
    headline: str
    url: str | None  # http(s) only
    outlets: list[str]
    outlet_count: int
    copies: int
    sentiment: str  # toward the company: negative, neutral or positive ("" when unknown)
    score: float | None  # positive minus negative probability, -1..1
    toward: bool  # True: the reading toward the company; False: the whole article's


def percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def window_length(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes % 60 == 0 and minutes >= 60:
        return "1 h" if minutes == 60 else f"{minutes // 60} h"
    return f"{minutes} min"


def evidence_sentence(payload: dict) -> str | None:
    """The statistics in one sentence, e.g. "14 of 18 stories negative (78%) in the 15 min to 07 Dec 2026
    04:32 UTC, against a usual 12% ± 5%.", or None when the payload has no window figures."""
    window = payload.get("window") if isinstance(payload, dict) else None
    if not isinstance(window, dict):
        return None
    try:
        n, k = int(window["stories"]), int(window["negatives"])
    except (KeyError, TypeError, ValueError):
        return None
    start, end = as_time(window.get("start")), as_time(window.get("end"))
    span = f" in the {window_length((end - start).total_seconds())} to {readable_utc(end)}" if start and end else ""
    sentence = f"{k} of {n} {'story' if n == 1 else 'stories'} negative ({percent(k / n) if n else '0%'}){span}"
    baseline = payload.get("baseline")
    if isinstance(baseline, dict) and isinstance(baseline.get("expected_share"), (int, float)) and n:
        p0 = float(baseline["expected_share"])
        spread = (p0 * (1 - p0) / n) ** 0.5  # the binomial spread of a share of n stories at the usual rate
        sentence += f", against a usual {percent(p0)} ± {percent(spread)}"
    extra = []
    if isinstance(window.get("articles"), int) and isinstance(window.get("outlets"), int):
        extra.append(f"{window['articles']} articles from {window['outlets']} outlets")
    if isinstance(window.get("tail"), (int, float)):
        extra.append(f"chance by luck p = {float(window['tail']):.1g}")
    return sentence + (" (" + "; ".join(extra) + ")" if extra else "") + "."


def story_rows(payload: dict, readings: dict[str, dict]) -> list[StoryRow]:
    """The payload's stories as table rows; ``readings`` maps an article id to its sentiment toward the
    alert's company (``toward`` True) or, lacking that, the article's (see store.story_sentiments)."""
    stories = payload.get("stories") if isinstance(payload, dict) else None
    rows = []
    for s in stories if isinstance(stories, list) else []:
        if not isinstance(s, dict):
            continue
        outlets = [str(o) for o in s.get("outlets") or [] if o is not None][:20]
        reading = readings.get(str(s.get("article_id")), {})
        label = reading.get("label") or ("negative" if s.get("negative") else "")
        rows.append(StoryRow(
            time=as_time(s.get("time")), headline=str(s.get("headline") or ""), url=http_url(s.get("url")),
            outlets=outlets, outlet_count=int(s.get("outlet_count") or len(outlets)),
            copies=int(s.get("copies") or 1), sentiment=label, score=reading.get("score"),
            toward=bool(reading.get("toward", "label" not in reading))))
    return rows
