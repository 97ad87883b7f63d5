"""Alert delivery, at least once: the ``alerts`` table is the outbox.

An alert is stored undelivered in the transaction that decided it. After that
transaction, ``deliver`` sends the alerts still undelivered to the ``alerts`` topic
(waiting for the broker's acknowledgement), counts them in ``sentinel_alerts_total``,
queues them for the webhook and only then marks them delivered. A crash or a retry
anywhere in between leaves the alert undelivered in the table: a replayed batch finds
it there, and ``sweep`` (a timer on every worker) sends any alert left undelivered for
longer than ``SENTINEL_ALERT_REDELIVER_AFTER``. No second episode is opened: the
decision is already stored. Consumers dedupe by the alert ``id``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor

import faust
from sqlalchemy import Engine, text

from agents import errors, sensors
from agents.alerts import records
from agents.alerts.records import AlertRecord
from agents.alerts.webhook import Webhook
from agents.app import produce

log = logging.getLogger(__name__)
SWEEP_LIMIT = 500


class AlertDelivery:
    def __init__(self, engine: Engine, topic: faust.TopicT, webhook: Webhook | None, redeliver_after: float,
                 sensor: sensors.Sensor | None = None, policy: errors.ErrorPolicy | None = None):
        self.engine = engine
        self.sensor = sensor or sensors.default
        self.policy = policy  # for produce (agents/errors.py)
        self.topic = topic
        self.webhook = webhook
        self.redeliver_after = redeliver_after

    async def deliver(self, alerts: list[AlertRecord], db: Executor, retrying: Callable) -> int:
        """Send the given alerts that are still undelivered; returns how many were sent."""
        if not alerts:
            return 0
        run = functools.partial(asyncio.get_running_loop().run_in_executor, db)
        pending = await run(retrying, self._undelivered, [a.id for a in alerts])
        todo = [a for a in alerts if a.id in pending]
        if not todo:
            return 0
        await produce(self.topic, [a.message() for a in todo], "alerts", self.sensor, self.policy)
        for alert in todo:
            self.sensor.on_alert_delivered(alert.kind, alert.severity)
            if self.webhook is not None:
                self.webhook.send_in_background(alert.as_dict())
        await run(retrying, self._mark_delivered, [a.id for a in todo])
        return len(todo)

    async def sweep(self, db: Executor, retrying: Callable) -> int:
        """Deliver alerts stored but left undelivered (a crash between commit and produce)."""
        run = functools.partial(asyncio.get_running_loop().run_in_executor, db)
        stale = await run(retrying, self._stale)
        if not stale:
            return 0
        log.warning("redelivering %d alert(s) stored but never delivered: %r", len(stale),
                    [a.id for a in stale[:5]])  # %r: ids carry event ids, hostile text
        sent = await self.deliver(stale, db, retrying)
        self.sensor.on_alerts_redelivered(sent)
        return sent

    def _undelivered(self, ids: list[str]) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(text("select id from alerts where id = any(:ids) and delivered_at is null"),
                                    {"ids": ids}).scalars())

    def _mark_delivered(self, ids: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("update alerts set delivered_at = now() where id = any(:ids) and delivered_at is null"),
                         {"ids": ids})

    def _stale(self) -> list[AlertRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "select id, kind, key, severity, opened_at, summary, payload from alerts "
                "where delivered_at is null and created_at < now() - make_interval(secs => :after) "
                "order by created_at limit :n"), {"after": self.redeliver_after, "n": SWEEP_LIMIT}).all()
        return [records.from_row(r) for r in rows]
