"""Producing approved replies to ``chat.outbound``, keyed by conversation (kafka-python)."""

from __future__ import annotations

import json
import threading

from agents.desk.store import Outbound

TOPIC = "chat.outbound"


class OutboundProducer:
    """One producer for the desk process, made on first use (the desk starts without a broker)."""

    def __init__(self, bootstrap: str, timeout: float = 10.0):
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._producer = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._producer is None:
                from agents.replay import make_producer

                self._producer = make_producer(self.bootstrap, bootstrap_timeout_s=self.timeout)
            return self._producer

    def send(self, reply: Outbound) -> None:
        """Produce and wait for the broker's acknowledgement (raises on failure)."""
        value = json.dumps(reply.record(), ensure_ascii=False).encode()
        self._get().send(TOPIC, key=reply.conversation_id.encode(), value=value).get(timeout=self.timeout)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
