"""The Kafka transport: the consumer Faust builds waits at most ``fetch_max_wait`` per fetch.

Tansu answers a waiting fetch only when the wait ends, so this setting is the
latency floor of an idle worker (Faust's own value is 1.5 s).
"""

import asyncio

from agents.app import create_app
from agents.transport import ConsumerThread
from infra.settings import Settings


def worker_consumer(fetch_max_wait: float):
    async def build():
        app = create_app(Settings(kafka_bootstrap="127.0.0.1:9", fetch_max_wait=fetch_max_wait))
        thread = app.consumer._thread
        assert isinstance(thread, ConsumerThread)
        consumer = thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    return asyncio.run(build())


def test_the_worker_consumer_uses_the_configured_fetch_wait():
    assert worker_consumer(0.1) == 100
    assert worker_consumer(0.75) == 750
