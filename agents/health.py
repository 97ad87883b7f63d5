"""The worker's health: ``ok``, or ``degraded`` with what is wrong, for ``/health``.

A sensor (``agents/sensors.py``): it hears the outage hooks. The gauge
``sentinel_worker_degraded`` is the Prometheus sensor's.
"""

from __future__ import annotations

import threading

from agents.sensors import Sensor


class Health(Sensor):
    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()  # set from the event loop, the model lanes and the database thread

    def degrade(self, part: str, why: str) -> None:
        with self._lock:
            self._problems[part] = why

    def recover(self, part: str) -> None:
        with self._lock:
            self._problems.pop(part, None)

    def on_outage(self, part: str, why: str) -> None:
        self.degrade(part, why)

    def on_recovery(self, part: str) -> None:
        self.recover(part)

    def report(self) -> dict:
        with self._lock:
            problems = dict(self._problems)
        return {"status": "degraded" if problems else "ok", "problems": problems}
