"""Negative-sentiment spike detection per company/ticker, and the alert lifecycle.

Method (documented in the README's "Spike alerts"):
- Windows count stories, not copies: every article counts for each of its keys
  (``article_keys``), and the articles of one story (``agents/alerts/stories.py``) count once
  per window. A story is negative in a window when at least half of its copies there are.
  Copies and distinct outlets are evidence, never count.
- Windows run on event time: trailing windows ``[e - window, e)`` ending on hop boundaries.
- Event time cannot be poisoned: each partition has its own watermark (its newest trusted
  event time); the detector's watermark is the smallest of the active partitions', and a
  partition silent for ``alert_idle_timeout`` seconds stops holding it back (Flink's
  ``withIdleness``). An event whose ``published_at`` or record time lay beyond the future
  tolerance carries its receive time and moves no watermark (``agents/clock.py``). The
  watermark never goes back.
- The wire going quiet decides too. The worker calls ``tick`` on a timer, so an idle partition
  stops holding the watermark back without waiting for a new event. When every partition has
  been idle for ``alert_idle_timeout`` no event is in flight, and the windows up to the one
  holding the newest event are evaluated early (``early_windows``, Beam's early firing on a
  processing-time trigger): an early window can open an alert, and nothing else. It is not
  final: it updates or closes no episode, marks nothing decided, and makes no later event
  late; it is decided again once final, where the episode it opened makes that decision
  ``stale``. A burst followed by silence alerts about ``alert_idle_timeout`` after its last
  event instead of at the next morning's first headline.
- Decisions only on final windows: a window is final once it ends ``alert_grace`` or more
  before the watermark, and every final window is decided once, in end order per key. A late
  event (its window already final) is stored and counted in the later windows still open,
  and in ``sentinel_late_events_total``.
- Exact statistics: the window's negative stories ``k`` of ``n`` against the key's expected
  share ``p0`` give the exact binomial tail ``P(X >= k)``, ``X ~ Binomial(n, p0)``
  (``scipy.stats.binom.sf``). ``p0`` is the key's own stories in the ``lookback`` before the
  window, shrunk towards the market-wide share of negative stories in that same lookback
  with the weight of ``PRIOR_WEIGHT`` stories, so a key seen for the first time starts from
  the market. The baseline, the key's and the market's, excludes the current episode
  (stories since the window that opened it). A window alerts when ``n >= alert_min_mentions``,
  ``k >= alert_min_stories``, ``k / n >= alert_min_negative_share`` and the tail is at most
  ``alert_max_tail``; severity follows the tail (``severity``).
- One alert per episode: opened by the first alerting window, updated by later ones, closed
  by the first later window that does not alert; the key is quiet for ``alert_cooldown``
  after. Decisions run under a per-key advisory lock and the alert id is the key and the
  window's end, so a replay, a restart or a second worker never opens an episode twice.

Nothing here reads the wall clock except the idleness of a partition, so the same history
replayed at any speed and batch size gives the same alerts (the backtest measures idleness on
the history's arrival clock and ticks where a live worker's timer would).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from scipy.stats import binom, norm
from sqlalchemy import Engine, text

from agents import sensors
from agents.alerts import records, routing
from agents.alerts.records import AlertRecord
from infra.settings import Settings

log = logging.getLogger(__name__)

KIND = "sentiment_spike"
COMPANY_PREFIX = "company:"  # the key of a linked company (agents/news.py)
PRIOR_WEIGHT = 20.0  # stories of market-wide share the key's own baseline is shrunk towards
DEFAULT_MARKET_SHARE = 0.2  # before any history at all
TOP_STORIES = 10
MAX_OUTLETS = 20  # outlets listed per story in an alert (the count is exact)
RESUME_LIMIT = timedelta(days=7)  # how far back a start or a rebalance decides windows at most


def tail_probability(k: int, n: int, p0: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p0): how unlikely k or more negatives of n are at share p0."""
    if n <= 0 or k <= 0:
        return 1.0
    p0 = min(max(p0, 1e-6), 1 - 1e-6)
    return float(binom.sf(k - 1, n, p0))


def expected_share(base_stories: int, base_negatives: int, market_share: float) -> float:
    """The key's baseline share, shrunk towards the market's with the weight of PRIOR_WEIGHT stories."""
    return (base_negatives + PRIOR_WEIGHT * market_share) / (base_stories + PRIOR_WEIGHT)


@dataclass
class Window:
    key: str
    start: datetime
    end: datetime
    stories: int  # distinct stories about the key in the window
    negatives: int  # of which negative
    articles: int = 0  # copies, all stories together (evidence)
    outlets: int = 0  # distinct outlets (evidence)
    mean_sentiment: float = 0.0
    baseline_stories: int = 0
    baseline_negatives: int = 0
    market_share: float = DEFAULT_MARKET_SHARE
    baseline_until: datetime | None = None  # the baseline ends here (the current episode's start) when set

    @property
    def share(self) -> float:
        return self.negatives / self.stories if self.stories else 0.0

    @property
    def expected_share(self) -> float:
        return expected_share(self.baseline_stories, self.baseline_negatives, self.market_share)

    @property
    def tail(self) -> float:
        return tail_probability(self.negatives, self.stories, self.expected_share)

    @property
    def z(self) -> float:
        """The tail as a one-sided standard-normal quantile (for reading only; decisions use the tail)."""
        return float(norm.isf(self.tail)) if self.tail < 1 else 0.0

    def figures(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "mentions": self.stories,
                "stories": self.stories, "negatives": self.negatives, "negative_share": round(self.share, 4),
                "articles": self.articles, "outlets": self.outlets,
                "mean_sentiment": round(self.mean_sentiment, 4), "tail": float(f"{self.tail:.4g}"),
                "z": round(self.z, 2)}


def severity(window: Window, max_tail: float = 1e-4) -> str:
    """From the tail probability: warning at the alert threshold, high 1,000 times rarer, critical 10^6."""
    if window.tail <= max_tail * 1e-6:
        return "critical"
    if window.tail <= max_tail * 1e-3:
        return "high"
    return "warning"


def alerting(w: Window, s: Settings) -> bool:
    return (w.stories >= s.alert_min_mentions and w.negatives >= s.alert_min_stories
            and w.share >= s.alert_min_negative_share and w.tail <= s.alert_max_tail)


@dataclass
class Episode:
    id: str
    opened_at: datetime
    last_seen_at: datetime
    peak_tail: float


def decide(w: Window, alerts: bool, open_episode: Episode | None, last_closed_at: datetime | None,
           cooldown_s: float) -> str:
    """What a final window does to its key's episode:

    ``open`` a new alert, ``update`` the open one, ``close`` it, ``cooldown`` (would open but
    the key is quiet), ``stale`` (a window at or before what the episode already saw: a
    re-decision after a restart changes nothing), or ``none``.
    """
    if open_episode is not None:
        if w.end <= open_episode.last_seen_at:
            return "stale"
        return "update" if alerts else "close"
    if not alerts:
        return "none"
    if last_closed_at is not None:
        if w.end <= last_closed_at:
            return "stale"
        if w.start < last_closed_at + timedelta(seconds=cooldown_s):
            return "cooldown"
    return "open"


def _epoch(t: datetime) -> float:
    return t.timestamp()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass
class Watermarks:
    """Per-partition event-time watermarks with idleness; the detector's watermark is their minimum."""

    idle_timeout: float
    clock: object = time.monotonic
    newest: dict[int, datetime] = field(default_factory=dict)
    active_at: dict[int, float] = field(default_factory=dict)
    assigned: set[int] | None = None  # None: the partitions seen so far
    value: datetime | None = None

    def assign(self, partitions: set[int]) -> None:
        now = self.clock()
        self.assigned = set(partitions)
        self.newest = {}
        self.active_at = {p: now for p in partitions}  # an empty partition is idle after the timeout
        self.value = None

    def observe(self, partition: int, t: datetime) -> None:
        self.active_at[partition] = self.clock()
        if partition not in self.newest or t > self.newest[partition]:
            self.newest[partition] = t

    def current(self) -> datetime | None:
        now = self.clock()
        expected = self.assigned if self.assigned is not None else set(self.newest)
        live = {p for p in expected if now - self.active_at.get(p, now) <= self.idle_timeout}
        if any(p not in self.newest for p in live):
            return self.value  # a live partition has not said where it is yet
        if live:
            candidate = min(self.newest[p] for p in live)
            if self.value is None or candidate > self.value:
                self.value = candidate
        return self.value

    def idle(self) -> set[int]:
        now = self.clock()
        expected = self.assigned if self.assigned is not None else set(self.newest)
        return {p for p in expected if now - self.active_at.get(p, now) > self.idle_timeout}

    def quiet(self) -> datetime | None:
        """The newest event time of all when every partition is idle (the wire went quiet), else None."""
        expected = self.assigned if self.assigned is not None else set(self.newest)
        if not self.newest or not expected or self.idle() != expected:
            return None
        return max(self.newest.values())


class SpikeDetector:
    def __init__(self, engine: Engine, settings: Settings, clock=time.monotonic,
                 sensor: sensors.Sensor | None = None, companies=None):
        self.engine = engine
        # ``company:<id>`` keys -> the company (``models.companies.Company``), for alert names: a mapping or a
        # callable returning one (the news pipeline's current universe)
        self.companies = companies
        self.sensor = sensor or sensors.default
        self.s = settings
        self.marks = Watermarks(settings.alert_idle_timeout, clock)
        self.decided_through: datetime | None = None  # every window ending at or before it is decided
        self.generation = 0  # counts rebalances (the story index reloads after one)
        self._earliest: datetime | None = None  # the earliest event time this process has stored
        self._current: dict[str, tuple[float, int, float]] = {}  # key -> (window end, stories, share)
        self._early_through: tuple[datetime, datetime] | None = None  # the last early evaluation's span
        self._exported: set[str] = set()
        # assign() runs on the event loop during a rebalance, evaluate() in the database thread
        self._lock = threading.Lock()

    @property
    def watermark(self) -> datetime | None:
        with self._lock:
            return self.marks.value

    def assign(self, partitions: set[int]) -> None:
        """After a rebalance: the partitions now read, and watermarks started afresh."""
        with self._lock:
            self.marks.assign(partitions)
            self.decided_through = None
            self.generation += 1

    def window_end(self, t: datetime) -> datetime:
        hop = self.s.alert_hop
        return _at((math.floor(_epoch(t) / hop) + 1) * hop)

    def frontier(self, watermark: datetime) -> datetime:
        """The end of the newest final window."""
        hop = self.s.alert_hop
        return _at(math.floor((_epoch(watermark) - self.s.alert_grace) / hop) * hop)

    def evaluate(self, events: list[tuple[int, datetime, bool]]) -> list[AlertRecord]:
        """After a committed batch: ``(partition, event time, trusted)`` of each stored article.

        Moves the watermarks with the trusted times, counts late events, and decides every
        window that became final since the last call; returns the alerts it opened.
        """
        with self._lock:
            for partition, t, trusted in events:
                if trusted:
                    self.marks.observe(partition, t)
                if self._earliest is None or t < self._earliest:
                    self._earliest = t
            done = self.decided_through
        if done is not None:
            late = sum(1 for _, t, _ in events if self.window_end(t) <= done)
            if late:
                self.sensor.on_late_events(late)
        return self._decide_final()

    def tick(self) -> list[AlertRecord]:
        """On the worker's timer, without a new event: idle partitions stop holding the watermark back, and a
        quiet wire evaluates the windows up to the newest event's early (``early_windows``)."""
        alerts = self._decide_final()
        with self._lock:
            quiet = self.marks.quiet()
            done = self.decided_through
            assigned = self.marks.assigned
        if quiet is None:
            return alerts
        through = self.window_end(quiet)
        if done is None:  # nothing final yet (a short history): from where deciding would resume
            done = self._resume_point(assigned, through, self._earliest or through)
        if through <= done or self._early_through == (done, through):
            return alerts  # nothing open, or these windows were already evaluated early for this quiet spell
        self._early_through = (done, through)
        return alerts + self.early_windows(done, through)

    def early_windows(self, after: datetime, through: datetime) -> list[AlertRecord]:
        """The windows ending in (after, through] evaluated before they are final: the alerts they open."""
        return self.decide_windows(after, through, early=True)

    def _decide_final(self) -> list[AlertRecord]:
        with self._lock:
            earliest = self._earliest
            watermark = self.marks.current()
            done = self.decided_through
            assigned = self.marks.assigned
        if watermark is None:
            return []
        final = self.frontier(watermark)
        if done is None:
            done = self._resume_point(assigned, final, earliest or final)
        if final <= done:
            return []
        alerts = self.decide_windows(done, final)
        with self._lock:
            if self.decided_through is None or final > self.decided_through:
                self.decided_through = final
        return alerts

    def _resume_point(self, assigned: set[int] | None, final: datetime, earliest: datetime) -> datetime:
        """Where deciding starts after a start or a rebalance: a little before the slowest partition's
        newest stored article or the earliest this process stored, whichever is older (re-deciding a
        window is harmless; skipping one is not)."""
        with self.engine.connect() as conn:
            slowest = conn.execute(text("""
                select min(newest) from (select max(event_time) newest from news_articles
                                         where cast(:parts as int[]) is null or kafka_partition = any(:parts)
                                         group by kafka_partition) p"""),
                                   {"parts": sorted(assigned) if assigned is not None else None}).scalar()
        span = 2 * (self.s.alert_window + self.s.alert_grace + self.s.alert_hop)
        start = min(slowest or final, earliest) - timedelta(seconds=span)
        start = max(start, final - RESUME_LIMIT)  # an article dated 1970 must not make it decide 56 years
        hop = self.s.alert_hop
        return min(final, _at(math.floor(_epoch(start) / hop) * hop))

    # -- windows -----------------------------------------------------------------------------------------
    def decide_windows(self, after: datetime, through: datetime, early: bool = False) -> list[AlertRecord]:
        """Decide every window ending in (after, through], per key in end order. ``early``: the windows are not
        final yet, so only an alerting window of a key without an open episode acts (it opens one)."""
        hop = timedelta(seconds=self.s.alert_hop)
        window = timedelta(seconds=self.s.alert_window)
        first_end = after + hop
        with self.engine.connect() as conn:
            open_keys = set(conn.execute(text(
                "select distinct key from alerts where kind = :kind and status = 'open'"), {"kind": KIND}).scalars())
            # the windows holding an article of the key (work in proportion to the articles, not to the span)
            pairs = set(conn.execute(text("""
                select distinct key, e from (
                    select k.key, k.event_time, to_timestamp((floor(extract(epoch from k.event_time) / :hop_s) + 1 + i)
                                                             * :hop_s) e
                    from article_keys k cross join generate_series(0, :n - 1) i
                    where k.event_time >= :lo and k.event_time < :through) x
                where e > :after and e <= :through and e - cast(:window as interval) <= event_time"""),
                {"hop_s": self.s.alert_hop, "n": math.ceil(self.s.alert_window / self.s.alert_hop),
                 "lo": first_end - window, "after": after, "through": through, "window": window}).all())
            # an open episode also needs the window after its key's articles (the one that closes it)
            pairs |= {(k, e) for k in open_keys for e in [first_end] + [e + hop for key, e in pairs if key == k]
                      if e <= through}
            windows = self.windows(conn, sorted(pairs, key=lambda p: (p[1], p[0])))
        new_alerts = []
        for w in sorted(windows, key=lambda w: (w.key, w.end)):
            if early:
                if w.key in open_keys or not alerting(w, self.s):
                    continue
            else:
                self._current[w.key] = (_epoch(w.end), w.stories, w.share)
            if not alerting(w, self.s) and w.key not in open_keys:
                continue
            with self.engine.begin() as conn:
                conn.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": w.key})
                action, alert = self._decide(conn, w)
            if action == "open":
                open_keys.add(w.key)
            elif action == "close":
                open_keys.discard(w.key)
            if alert is not None:
                new_alerts.append(alert)
        self._export_top_keys()
        self.export_open()
        return new_alerts

    def export_open(self, limit: int = 500) -> None:
        """``sentinel_spike_alert_open``: every open episode (from the table, whichever worker decided it)
        with the alert's key and severity, so Alertmanager gets the alert's own labels."""
        with self.engine.connect() as conn:
            now = {(key, sev) for key, sev in conn.execute(text(
                "select key, severity from alerts where kind = :kind and status = 'open' order by opened_at desc "
                "limit :n"), {"kind": KIND, "n": limit})}
        self.sensor.on_open_episodes(now)

    def windows(self, conn, pairs: list[tuple[str, datetime]],
                baseline_until: dict[str, datetime] | None = None) -> list[Window]:
        """Figures of each (key, window end): its stories, the key's baseline before it (up to
        ``baseline_until[key]`` when given: the current episode's start) and the market's share."""
        if not pairs:
            return []
        window = timedelta(seconds=self.s.alert_window)
        lookback = timedelta(seconds=self.s.alert_lookback)
        until = baseline_until or {}
        cuts = [min(e - window, until[k]) if k in until else e - window for k, e in pairs]
        rows = conn.execute(text("""
            with w(key, wend, cut) as (
                select * from unnest(cast(:keys as text[]), cast(:ends as timestamptz[]), cast(:cuts as timestamptz[]))),
            copies as (
                select w.key, w.wend, coalesce(k.story_id, k.article_id) story, k.is_negative, k.sentiment, a.source
                from w join article_keys k on k.key = w.key and k.event_time >= w.wend - cast(:window as interval)
                                          and k.event_time < w.wend
                       join news_articles a on a.id = k.article_id),
            cur as (  -- the window's stories: negative when at least half of their copies are
                select key, wend, count(*) stories, count(*) filter (where neg) negatives, sum(n) articles,
                       sum(sent) sent
                from (select key, wend, story, avg(is_negative::int) >= 0.5 neg, count(*) n, sum(sentiment) sent
                      from copies group by 1, 2, 3) s group by 1, 2),
            outlets as (select key, wend, count(distinct source) outlets from copies group by 1, 2),
            base as (
                select key, wend, count(*) stories, count(*) filter (where neg) negatives
                from (select w.key, w.wend, coalesce(k.story_id, k.article_id) story,
                             avg(k.is_negative::int) >= 0.5 neg
                      from w join article_keys k on k.key = w.key and k.event_time >= w.wend - cast(:span as interval)
                                                and k.event_time < w.cut
                      group by 1, 2, 3) s group by 1, 2),
            cuts as (select distinct wend, cut from w),
            market as (  -- the market's share over the same span as the key's baseline: before the episode too
                select m.wend, m.cut, avg(m.neg::int) share from (
                    select c.wend, c.cut, k.key, coalesce(k.story_id, k.article_id) story,
                           avg(k.is_negative::int) >= 0.5 neg
                    from cuts c join article_keys k on k.event_time >= c.wend - cast(:span as interval)
                                                   and k.event_time < c.cut
                    group by 1, 2, 3, 4) m group by m.wend, m.cut)
            select w.key, w.wend, coalesce(cur.stories, 0), coalesce(cur.negatives, 0), coalesce(cur.articles, 0),
                   coalesce(cur.sent / nullif(cur.articles, 0), 0), coalesce(base.stories, 0),
                   coalesce(base.negatives, 0), market.share, coalesce(outlets.outlets, 0)
            from w left join cur on cur.key = w.key and cur.wend = w.wend
                   left join base on base.key = w.key and base.wend = w.wend
                   left join market on market.wend = w.wend and market.cut = w.cut
                   left join outlets on outlets.key = w.key and outlets.wend = w.wend
            order by w.wend, w.key"""),
            {"keys": [k for k, _ in pairs], "ends": [e for _, e in pairs], "cuts": cuts, "window": window,
             "span": window + lookback}).all()
        out = []
        for key, end, n, k, copies, mean, base_n, base_k, market, outlets in rows:
            out.append(Window(key, end - window, end, int(n), int(k), int(copies), int(outlets), float(mean),
                              int(base_n), int(base_k),
                              float(market) if market is not None else DEFAULT_MARKET_SHARE,
                              until.get(key)))
        return out

    # -- decisions ---------------------------------------------------------------------------------------
    def _decide(self, conn, w: Window) -> tuple[str, AlertRecord | None]:
        row = conn.execute(text(
            "select id, opened_at, last_seen_at, payload from alerts where key = :k and kind = :kind "
            "and status = 'open' order by opened_at desc limit 1"), {"k": w.key, "kind": KIND}).first()
        episode = None
        if row is not None:
            episode = Episode(row.id, row.opened_at, row.last_seen_at,
                              float(row.payload.get("window", {}).get("tail", 1.0)))
            # the baseline excludes the current episode: it ends where the episode's first window starts
            start = row.opened_at - timedelta(seconds=self.s.alert_window)
            w = self.windows(conn, [(w.key, w.end)], {w.key: start})[0]
        last_closed = conn.execute(text(
            "select max(closed_at) from alerts where key = :k and kind = :kind and closed_at is not null"),
            {"k": w.key, "kind": KIND}).scalar()
        action = decide(w, alerting(w, self.s), episode, last_closed, self.s.alert_cooldown)
        if action == "close":
            conn.execute(text("update alerts set status = 'closed', closed_at = :t where id = :id and status = 'open'"),
                         {"t": w.end, "id": episode.id})
            log.info("alert %r closed", episode.id)
        elif action == "update":
            update = {"id": episode.id, "t": w.end}
            if w.tail < episode.peak_tail:
                conn.execute(text("update alerts set last_seen_at = :t, severity = :sev, "
                                  "payload = cast(:p as jsonb) where id = :id"),
                             {**update, "sev": severity(w, self.s.alert_max_tail),
                              "p": json.dumps(self._payload(conn, w))})
            else:
                conn.execute(text("update alerts set last_seen_at = :t where id = :id"), update)
        elif action == "open":
            payload = self._payload(conn, w)
            alert = AlertRecord(
                id=f"{KIND}:{w.key}:{w.end.isoformat()}", kind=KIND, key=w.key,
                severity=severity(w, self.s.alert_max_tail), opened_at=w.end,
                summary=f"{w.negatives} of {w.stories} stories about {records.shown_name(w.key, payload)} negative ({w.share:.0%}, baseline "
                        f"{w.expected_share:.0%}, tail p={w.tail:.1e}); {w.articles} articles from "
                        f"{w.outlets} outlets",
                payload=payload)
            if not records.insert(conn, alert):
                return "stale", None
            routing.route(conn, alert)  # the watchlists' webhooks, sent from the outbox
            log.warning("ALERT %r: %r", alert.id, alert.summary)
            return action, alert
        return action, None

    def company_of(self, key: str) -> dict | None:
        """``{"id", "name", "ticker"}`` of a ``company:<id>`` key's company; None for other keys."""
        if not key.startswith(COMPANY_PREFIX):
            return None
        companies = self.companies() if callable(self.companies) else (self.companies or {})
        company = companies.get(key[len(COMPANY_PREFIX):])
        return company.summary() if company is not None else {"id": key[len(COMPANY_PREFIX):], "name": None,
                                                                "ticker": None}

    def _payload(self, conn, w: Window) -> dict:
        """The alert's evidence: its stories (headline, outlets, URL, time, copies), counts and tail."""
        rows = conn.execute(text("""
            select coalesce(k.story_id, k.article_id) story, avg(k.is_negative::int) >= 0.5 neg,
                   count(*) copies, min(k.event_time) first_time, max(k.negative) negative,
                   coalesce(jsonb_agg(distinct a.source) filter (where a.source is not null), '[]'::jsonb) outlets,
                   (array_agg(a.url order by k.event_time, a.id) filter (where a.url is not null))[1] url,
                   (array_agg(coalesce(a.title, left(a.text, 300)) order by k.event_time, a.id))[1] first_headline,
                   (array_agg(a.id order by k.event_time, a.id))[1] first_id
            from article_keys k join news_articles a on a.id = k.article_id
            where k.key = :key and k.event_time >= :start and k.event_time < :end
            group by 1 order by 2 desc, 3 desc, 4, 1 limit :n"""),
            {"key": w.key, "start": w.start, "end": w.end, "n": TOP_STORIES}).all()
        headlines = dict(conn.execute(text("select id, headline from stories where id = any(:ids)"),
                                      {"ids": [r.story for r in rows]}).all())
        stories = [{"story_id": r.story, "headline": headlines.get(r.story) or r.first_headline,
                    "outlets": list(r.outlets)[:MAX_OUTLETS], "outlet_count": len(r.outlets), "url": r.url,
                    "time": r.first_time.isoformat(), "copies": int(r.copies), "negative": bool(r.neg),
                    "article_id": r.first_id} for r in rows]
        return {
            "key": w.key, "company": self.company_of(w.key), "window": w.figures(),
            "baseline": {"mentions": w.baseline_stories, "stories": w.baseline_stories,
                         "negatives": w.baseline_negatives,
                         "negative_share": round(w.baseline_negatives / w.baseline_stories, 4)
                         if w.baseline_stories else 0.0,
                         "market_share": round(w.market_share, 4), "expected_share": round(w.expected_share, 4),
                         "lookback_s": self.s.alert_lookback, "prior_weight": PRIOR_WEIGHT,
                         "excludes_episode_from": w.baseline_until.isoformat() if w.baseline_until else None},
            "tail": w.tail,
            "thresholds": {"max_tail": self.s.alert_max_tail, "min_stories": self.s.alert_min_mentions,
                           "min_negative_stories": self.s.alert_min_stories,
                           "min_negative_share": self.s.alert_min_negative_share},
            "stories": stories,
            "top_headlines": [{"id": s["article_id"], "text": s["headline"], "negative": s["negative"],
                               "event_time": s["time"]} for s in stories[:5]],
        }

    def _export_top_keys(self, top_n: int = 20) -> None:
        """Negative share of the busiest keys' latest final window only, so the label set stays bounded."""
        if not self._current:
            return
        horizon = max(v[0] for v in self._current.values()) - 2 * self.s.alert_window
        live = {k: v for k, v in self._current.items() if v[0] >= horizon}
        self._current = live
        top = sorted(live, key=lambda k: (-live[k][1], k))[:top_n]
        self.sensor.on_entity_windows({key: (live[key][1], live[key][2]) for key in top}, self._exported - set(top))
        self._exported = set(top)
