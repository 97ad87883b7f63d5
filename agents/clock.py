"""One clock rule for every event time: what a producer claims is held to at most now plus the tolerance.

An event has two clocks a producer controls: the time it claims (a news ``published_at``, a chat
``ts``) and the Kafka record time (CreateTime, set by the producer too). Either can lie, and a
time far ahead would make every spike window final at once. So:

- a record time beyond now (the time the worker receives the event) plus ``future_tolerance`` is
  replaced by the receive time;
- a claimed time beyond the (held) record time plus the tolerance is replaced by that record time;
- each replacement is counted in ``sentinel_future_timestamps_total``, and an event whose time
  was replaced is not *trusted*: it is stored and counted in its windows, but it moves no
  watermark (``agents/alerts/spikes.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents import sensors


def event_time(claimed: datetime | None, record_ts: float, tolerance: timedelta,
               now: datetime | None = None, sensor: sensors.Sensor | None = None) -> tuple[datetime, bool]:
    """The event's time and whether it may move watermarks (False: a replaced, future time)."""
    sensor = sensor or sensors.default
    now = now or datetime.now(UTC)
    record = datetime.fromtimestamp(record_ts, tz=UTC)
    trusted = True
    if record > now + tolerance:
        sensor.on_future_timestamp()
        record, trusted = now, False
    if claimed is None:
        return record, trusted
    reference = min(record, now)
    if claimed > reference + tolerance:
        sensor.on_future_timestamp()
        return reference, False
    return claimed, True
