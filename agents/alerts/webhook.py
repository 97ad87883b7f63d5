"""The alert webhook: each alert POSTed as JSON from one background thread."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request

from infra import metrics

log = logging.getLogger(__name__)


class Webhook:
    """POSTs each alert as JSON from one background thread, with retries and exponential back-off.

    The queue is bounded: while the endpoint is down and the queue is full, further alerts are
    dropped and counted as failures. The webhook is a notification only; every alert is in the
    ``alerts`` table and on the ``alerts`` topic whatever happens here.
    """

    def __init__(self, url: str, token: str = "", attempts: int = 4, first_delay: float = 1.0,
                 queue_size: int = 1000):
        self.url = url
        self.token = token
        self.attempts = attempts
        self.first_delay = first_delay
        self.queue: queue.Queue = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None

    def send(self, alert: dict) -> bool:
        body = json.dumps(alert).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "sentinel-alerts"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    if 200 <= response.status < 300:
                        return True
            except OSError as exc:
                log.warning("alert webhook attempt %d/%d failed: %s", attempt, self.attempts,
                            type(exc).__name__)
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        metrics.WEBHOOK_FAILURES.inc()
        return False

    def send_in_background(self, alert: dict) -> bool:
        """Queue the alert for the sender thread; False when the queue is full (the alert is dropped)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="alert-webhook")
            self._thread.start()
        try:
            self.queue.put_nowait(alert)
            return True
        except queue.Full:
            metrics.WEBHOOK_FAILURES.inc()
            log.warning("alert webhook queue full (%d waiting); alert %s not sent", self.queue.qsize(),
                        alert.get("id"))
            return False

    def _run(self) -> None:
        while True:
            self.send(self.queue.get())
