"""Negative-sentiment spike detection per company/ticker, and the alert lifecycle.

Method (documented in the README):
- Every article counts once for each of its keys (``article_keys``). Windows run on
  event time: the window of an article at time t is the trailing window
  ``[e - window, e)`` with ``e`` the first hop boundary after t, so windows overlap
  by ``window - hop``.
- Baseline: the key's own articles in the ``lookback`` before the window, shrunk
  towards the global negative rate with the weight of ``PRIOR_WEIGHT`` articles, so a
  key with little history starts from the market-wide rate.
- A window alerts when it has at least ``min_mentions`` articles, at least
  ``min_negative_share`` of them negative, and its negative count is at least ``z``
  binomial standard deviations above the baseline: ``(k - n p0) / sqrt(n p0 (1 - p0))``.
- One alert per episode: while an alert is open, further alerting windows update it;
  the first later window that does not alert closes it; the key cannot alert again
  for ``cooldown`` of event time. Decisions run under a per-key advisory lock in
  PostgreSQL and the alert id is derived from the key and the window, so a replay, a
  restart or a second worker can never open the same episode twice.
- Windows that ended more than ``grace`` before the watermark are final: late events
  are stored but change no alert. The watermark is the smallest of the newest event
  times of the partitions assigned to this worker (none until each has delivered an
  event), so a fast replay that reads one partition ahead of another does not make
  the other's events "late".

All state lives in PostgreSQL, so a restarted worker carries on where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, text

from agents.alerts import records
from agents.alerts.records import AlertRecord
from infra import metrics
from infra.settings import Settings

log = logging.getLogger(__name__)

KIND = "sentiment_spike"
PRIOR_WEIGHT = 20.0
TOP_HEADLINES = 5


@dataclass
class Window:
    key: str
    start: datetime
    end: datetime
    mentions: int
    negatives: int
    mean_sentiment: float
    baseline_mentions: int
    baseline_share: float
    expected_share: float

    @property
    def share(self) -> float:
        return self.negatives / self.mentions if self.mentions else 0.0

    @property
    def z(self) -> float:
        p0 = min(max(self.expected_share, 0.02), 0.98)
        n = self.mentions
        return (self.negatives - n * p0) / math.sqrt(n * p0 * (1 - p0)) if n else 0.0

    def figures(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "mentions": self.mentions,
                "negatives": self.negatives, "negative_share": round(self.share, 4),
                "mean_sentiment": round(self.mean_sentiment, 4), "z": round(self.z, 2)}


def severity(window: Window) -> str:
    if window.z >= 10 or window.share >= 0.9:
        return "critical"
    if window.z >= 7:
        return "high"
    return "warning"


def _epoch(t: datetime) -> float:
    return t.timestamp()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class SpikeDetector:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.s = settings
        self.watermark: datetime | None = None
        self._partition_times: dict[int, datetime] = {}
        self._assigned: set[int] | None = None  # None: every partition this worker has seen
        self._global_share: tuple[float, float] | None = None  # (computed at, share)
        self._current: dict[str, tuple[float, int, float]] = {}  # key -> (window end, mentions, share)
        self._exported: set[str] = set()
        # assign() runs on the event loop during a rebalance, advance() in the database thread
        self._lock = threading.Lock()

    def advance(self, partition_times: dict[int, datetime]) -> None:
        """Move the watermark with the newest event time of each partition in a batch."""
        with self._lock:
            for partition, t in partition_times.items():
                if partition not in self._partition_times or t > self._partition_times[partition]:
                    self._partition_times[partition] = t
            expected = self._assigned if self._assigned is not None else set(self._partition_times)
            if expected and expected <= set(self._partition_times):
                self.watermark = min(self._partition_times[p] for p in expected)

    def assign(self, partitions: set[int]) -> None:
        """After a rebalance: the partitions now read, and a watermark started afresh."""
        with self._lock:
            self._assigned = set(partitions)
            self._partition_times = {}
            self.watermark = None

    def window_end(self, t: datetime) -> datetime:
        hop = self.s.alert_hop
        return _at((math.floor(_epoch(t) / hop) + 1) * hop)

    def evaluate(self, touched: dict[str, set[datetime]],
                 partition_times: dict[int, datetime] | None = None) -> list[AlertRecord]:
        """Re-evaluate every window touched by a committed batch (key -> event times); returns new alerts.

        Each distinct window of each key is evaluated in time order: a fast replay
        delivers one key's events from several partitions, far apart in event time.
        """
        if partition_times:
            self.advance(partition_times)
        watermark = self.watermark  # one read: a rebalance may reset it meanwhile
        final_before = watermark - timedelta(seconds=self.s.alert_grace) if watermark else None
        new_alerts = []
        if not touched:
            return new_alerts
        global_share = self.global_share()
        pairs = sorted({(key, self.window_end(t)) for key, times in touched.items() for t in times})
        if final_before is not None:  # a late event in a final window: stored, but changes no alert
            pairs = [(k, end) for k, end in pairs if end >= final_before]
        # One query screens every touched window; only windows that alert, and keys with an
        # open episode, take the per-key lock and decide (most batches: none).
        with self.engine.connect() as conn:
            windows = self._windows(conn, pairs, global_share)
            open_keys = set(conn.execute(text(
                "select distinct key from alerts where kind = :kind and status = 'open' and key = any(:keys)"),
                {"kind": KIND, "keys": sorted({k for k, _ in pairs})}).scalars())
        for window in windows:
            if window.key not in self._current or _epoch(window.end) >= self._current[window.key][0]:
                self._current[window.key] = (_epoch(window.end), window.mentions, window.share)
            if not self.alerting(window) and window.key not in open_keys:
                continue
            with self.engine.begin() as conn:
                conn.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": window.key})
                fresh = self._windows(conn, [(window.key, window.end)], global_share)[0]
                alert = self._decide(conn, fresh)
            if alert:
                new_alerts.append(alert)
        self._export_top_keys()
        return new_alerts

    def global_share(self) -> float:
        now = time.monotonic()
        if self._global_share and now - self._global_share[0] < 30:
            return self._global_share[1]
        with self._lock:
            newest = self.watermark or max(self._partition_times.values(), default=None)
        newest = newest or datetime.now(timezone.utc)
        since = newest - timedelta(seconds=self.s.alert_lookback)
        with self.engine.connect() as conn:
            share = conn.execute(text("select avg(is_negative::int) from article_keys where event_time >= :t"),
                                 {"t": since}).scalar()
        share = float(share) if share is not None else 0.2
        self._global_share = (now, share)
        return share

    def _windows(self, conn, pairs: list[tuple[str, datetime]], global_share: float) -> list[Window]:
        """Figures of each (key, window end): the window itself and the key's baseline before it."""
        if not pairs:
            return []
        window = timedelta(seconds=self.s.alert_window)
        lookback = timedelta(seconds=self.s.alert_lookback)
        rows = conn.execute(text("""
            with w(key, wend) as (select * from unnest(cast(:keys as text[]), cast(:ends as timestamptz[])))
            select w.key, w.wend,
                   count(k.key) filter (where k.event_time >= w.wend - cast(:window as interval)),
                   coalesce(sum(k.is_negative::int) filter (where k.event_time >= w.wend - cast(:window as interval)), 0),
                   coalesce(avg(k.sentiment) filter (where k.event_time >= w.wend - cast(:window as interval)), 0),
                   count(k.key) filter (where k.event_time < w.wend - cast(:window as interval)),
                   coalesce(sum(k.is_negative::int) filter (where k.event_time < w.wend - cast(:window as interval)), 0)
            from w left join article_keys k
              on k.key = w.key and k.event_time >= w.wend - cast(:span as interval) and k.event_time < w.wend
            group by w.key, w.wend order by w.wend, w.key"""),
            {"keys": [k for k, _ in pairs], "ends": [e for _, e in pairs], "window": window,
             "span": window + lookback}).all()
        out = []
        for key, end, n, k, mean, base_n, base_k in rows:
            expected = (base_k + PRIOR_WEIGHT * global_share) / (base_n + PRIOR_WEIGHT)
            out.append(Window(key, end - window, end, int(n), int(k), float(mean), int(base_n),
                              base_k / base_n if base_n else 0.0, expected))
        return out

    def alerting(self, w: Window) -> bool:
        return (w.mentions >= self.s.alert_min_mentions and w.share >= self.s.alert_min_negative_share
                and w.z >= self.s.alert_z)

    def _decide(self, conn, w: Window) -> AlertRecord | None:
        open_alert = conn.execute(text(
            "select id, severity, last_seen_at, payload from alerts where key = :k and kind = :kind "
            "and status = 'open' order by opened_at desc limit 1"), {"k": w.key, "kind": KIND}).first()
        if not self.alerting(w):
            if open_alert is not None and w.end > open_alert.last_seen_at:
                conn.execute(text("update alerts set status = 'closed', closed_at = :t where id = :id"),
                             {"t": w.end, "id": open_alert.id})
                log.info("alert %r closed", open_alert.id)
            return None
        if open_alert is not None:
            peak = open_alert.payload.get("window", {}).get("z", 0)
            update = {"id": open_alert.id, "t": max(w.end, open_alert.last_seen_at)}
            if w.z > peak:
                payload = self._payload(conn, w)
                conn.execute(text("update alerts set last_seen_at = :t, severity = :sev, "
                                  "payload = cast(:p as jsonb) where id = :id"),
                             {**update, "sev": severity(w), "p": json.dumps(payload)})
            else:
                conn.execute(text("update alerts set last_seen_at = :t where id = :id"), update)
            return None
        last_closed = conn.execute(text(
            "select max(closed_at) from alerts where key = :k and kind = :kind and status = 'closed'"),
            {"k": w.key, "kind": KIND}).scalar()
        if last_closed is not None and w.start < last_closed + timedelta(seconds=self.s.alert_cooldown):
            return None
        alert = AlertRecord(
            id=f"{KIND}:{w.key}:{w.end.isoformat()}", kind=KIND, key=w.key, severity=severity(w), opened_at=w.end,
            summary=f"{w.negatives}/{w.mentions} negative headlines about {w.key} "
                    f"({w.share:.0%}, baseline {w.expected_share:.0%}, z={w.z:.1f})",
            payload=self._payload(conn, w))
        if not records.insert(conn, alert):
            return None
        log.warning("ALERT %r: %r", alert.id, alert.summary)
        return alert

    def _payload(self, conn, w: Window) -> dict:
        top = conn.execute(text("""
            select a.id, coalesce(a.title, left(a.text, 300)), k.negative, a.event_time
            from article_keys k join news_articles a on a.id = k.article_id
            where k.key = :key and k.event_time >= :start and k.event_time < :end
            order by k.negative desc, a.event_time limit :n"""),
            {"key": w.key, "start": w.start, "end": w.end, "n": TOP_HEADLINES}).all()
        return {
            "key": w.key, "window": w.figures(),
            "baseline": {"mentions": w.baseline_mentions, "negative_share": round(w.baseline_share, 4),
                         "expected_share": round(w.expected_share, 4),
                         "lookback_s": self.s.alert_lookback},
            "thresholds": {"z": self.s.alert_z, "min_mentions": self.s.alert_min_mentions,
                           "min_negative_share": self.s.alert_min_negative_share},
            "top_headlines": [{"id": r[0], "text": r[1], "negative": round(float(r[2]), 4),
                               "event_time": r[3].isoformat()} for r in top],
        }

    def _export_top_keys(self, top_n: int = 20) -> None:
        """Negative share of the busiest keys only, so the metric's label set stays bounded."""
        if not self._current:
            return
        horizon = max(v[0] for v in self._current.values()) - 2 * self.s.alert_window
        live = {k: v for k, v in self._current.items() if v[0] >= horizon}
        self._current = live
        top = sorted(live, key=lambda k: live[k][1], reverse=True)[:top_n]
        for key in self._exported - set(top):
            metrics.ENTITY_NEGATIVE_SHARE.remove(key)
            metrics.ENTITY_MENTIONS.remove(key)
        for key in top:
            metrics.ENTITY_NEGATIVE_SHARE.labels(key).set(live[key][2])
            metrics.ENTITY_MENTIONS.labels(key).set(live[key][1])
        self._exported = set(top)
