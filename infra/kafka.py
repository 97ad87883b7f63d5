"""Topic contract and topic creation (kafka-python admin)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas import topics


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    doc: str


def topic_specs(partitions: int) -> list[TopicSpec]:
    """Every topic Sentinel reads or writes (``schemas/topics.py``), with explicit partition counts.

    Tansu auto-creates unknown topics with 4 partitions, so nothing is left to
    auto-creation: the input topics and their outputs share ``partitions``.
    """
    return [TopicSpec(t.name, 1 if t.single_partition else partitions, t.doc) for t in topics.ALL]


def admin_client(bootstrap: str):
    from kafka import KafkaAdminClient

    # A short first connection: ensure_topics retries until its own deadline, callers answer quickly.
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sentinel-admin", request_timeout_ms=10_000,
                            bootstrap_timeout_ms=5_000)


def ensure_topics(bootstrap: str, specs: list[TopicSpec], timeout: float = 30.0, replication: int = 1) -> list[str]:
    """Create missing topics with ``replication`` copies of each partition (``settings.topic_replication``;
    at most the number of brokers); returns the names that exist afterwards. Existing topics are left as they are."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = admin_client(bootstrap)
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(s.name, s.partitions, replication) for s in specs if s.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return sorted(set(admin.list_topics()))
    finally:
        admin.close()


def cluster_id(bootstrap: str) -> str:
    """The id the cluster reports; a new one means the cluster was rebuilt (see the worker's reset check)."""
    admin = admin_client(bootstrap)
    try:
        return admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()


def make_producer(bootstrap: str, bootstrap_timeout_s: float = 30.0):
    """A kafka-python producer that waits for every replica (``acks=all``) and allows large records."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=16 * 1024 * 1024,
                         retries=5, client_id="sentinel-replay",
                         bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000))


def follow(bootstrap: str, names: list[str]):
    """A consumer of the topics ``names`` from their start, outside any group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=1000)
    partitions = [TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer
