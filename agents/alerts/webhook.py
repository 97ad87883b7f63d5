"""The alert webhook: each alert POSTed as JSON from one background thread."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from urllib.parse import urlsplit

import httpx

from agents import sensors

log = logging.getLogger(__name__)


class Webhook:
    """POSTs each alert as JSON from one background thread, with retries and exponential back-off.

    Redirects are never followed (the bearer token would go wherever they point): a 3xx is a
    failed attempt. The queue is bounded: while the endpoint is down and the queue is full,
    further alerts are dropped and counted as failures. The webhook is a notification only;
    every alert is in the ``alerts`` table and on the ``alerts`` topic whatever happens here.
    The URL and the token are never logged (a webhook URL often carries a secret itself).
    """

    def __init__(self, url: str, token: str = "", attempts: int = 4, first_delay: float = 1.0,
                 queue_size: int = 1000, sensor: sensors.Sensor | None = None):
        self.url = url
        self.sensor = sensor or sensors.default
        self.token = token
        self.attempts = attempts
        self.first_delay = first_delay
        self.queue: queue.Queue = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._client = httpx.Client(follow_redirects=False, timeout=httpx.Timeout(5.0),
                                    headers={"User-Agent": "sentinel-alerts"})

    def send(self, alert: dict) -> bool:
        """Deliver one alert now, retrying; False (and counted) when every attempt failed."""
        body = json.dumps(alert).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            problem = self._attempt(body, headers)
            if problem is None:
                return True
            log.warning("alert webhook attempt %d/%d failed: %s", attempt, self.attempts, problem)
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        self.sensor.on_webhook_failure()
        return False

    def _attempt(self, body: bytes, headers: dict) -> str | None:
        """One POST; None on a 2xx, else what went wrong (safe to log)."""
        try:
            # Streamed so that the response body is never read: only its status matters.
            with self._client.stream("POST", self.url, content=body, headers=headers) as response:
                status = response.status_code
                location = response.headers.get("Location", "")
        except httpx.HTTPError as exc:  # refused, timed out, malformed or cut-off response
            return type(exc).__name__
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            host = urlsplit(location).hostname if location else None
            return f"HTTP {status} redirect to {host or 'the same host'} (not followed)"
        return f"HTTP {status}"

    def send_in_background(self, alert: dict) -> bool:
        """Queue the alert for the sender thread; False when the queue is full (the alert is dropped)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="alert-webhook")
                self._thread.start()
        try:
            self.queue.put_nowait(alert)
            return True
        except queue.Full:
            self.sensor.on_webhook_failure()
            log.warning("alert webhook queue full (%d waiting); alert %r not sent", self.queue.qsize(),
                        _alert_id(alert))
            return False

    def _run(self) -> None:
        while True:
            alert = self.queue.get()
            try:
                self.send(alert)
            except Exception as exc:  # noqa: BLE001 - a bug must cost one alert, never the sender thread
                self.sensor.on_webhook_failure()
                log.error("alert webhook: alert %r not sent, unexpected %s", _alert_id(alert),
                          type(exc).__name__, exc_info=True)


def _alert_id(alert) -> object:
    return alert.get("id") if isinstance(alert, dict) else None
