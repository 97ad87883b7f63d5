"""A chat backlog does not silence the news: the real worker runs both agents on one Kafka consumer, and news
produced behind thousands of waiting chat messages is read at once, not after them."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.harness import news_behind_chat
from tests.helpers import Worker

CHAT, NEWS = 3000, 100


@pytest.mark.integration
def test_news_is_read_while_a_chat_backlog_waits(services, tmp_path, data_dir):
    worker = Worker(services, tmp_path, SENTINEL_AGENTS="news,chat").start().wait_assigned()
    try:
        measured = news_behind_chat(services, data_dir, CHAT, NEWS, timeout=240)
        assert worker.process.poll() is None, "the worker crashed"
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]
    # Without the fetch cap (agents/app.py, max_poll_records; SENTINEL_MAX_POLL_RECORDS=1000000) the news waited
    # for chat to drain what one fetch had brought: 58.8 s to 136 s here (bench.agents_apart, docs/RELIABILITY.md),
    # against 6 s with it. Chat still had more than half its backlog to read when the last article was stored.
    assert measured["seconds"] < 30 and measured["chat_waiting"] > CHAT // 2, measured


@given(buffer=st.integers(16, 100_000), partitions=st.integers(1, 256))
def test_one_fetch_per_partition_above_the_pause_mark_never_fills_the_buffer(buffer, partitions):
    """The worst case of the cap: an agent's buffer just under Faust's pause mark, then one full fetch from each of
    its partitions before each is paused. Where the room above the mark is under one record per partition, the
    cap is one record and the bound cannot hold (a buffer under 5 records a partition)."""
    from mode.utils.queues import FlowControlQueue

    from agents.app import max_poll_records

    mark = math.ceil(buffer / FlowControlQueue.pressure_high_ratio)
    cap = max_poll_records(buffer, partitions)
    assert cap >= 1
    if buffer - mark >= partitions:
        assert (mark - 1) + partitions * cap < buffer
