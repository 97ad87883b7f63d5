"""The worker's health: ``ok``, or ``degraded`` with what is wrong, for ``/health`` and the metrics."""

from __future__ import annotations

import threading

from infra import metrics


class Health:
    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()  # set from the event loop, the model lanes and the database thread

    def degrade(self, part: str, why: str) -> None:
        with self._lock:
            self._problems[part] = why
        metrics.WORKER_DEGRADED.labels(part).set(1)

    def recover(self, part: str) -> None:
        with self._lock:
            if self._problems.pop(part, None) is None:
                return
        metrics.WORKER_DEGRADED.labels(part).set(0)

    def report(self) -> dict:
        with self._lock:
            problems = dict(self._problems)
        return {"status": "degraded" if problems else "ok", "problems": problems}
