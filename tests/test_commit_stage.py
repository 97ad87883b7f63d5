"""The commit stage: in order, acknowledged only after the commit, bounded, crashes on bugs.

Faust's own ``Message`` carries the reference counts; the app and the events
around it are fakes.
"""

import asyncio

import pytest
from faust.types.tuples import Message

from agents.commit_stage import CommitStage


class FakeApp:
    def __init__(self):
        self.crashed: list[BaseException] = []

    async def crash(self, exc):
        self.crashed.append(exc)


class FakeEvent:
    """What a Faust stream hands the agent: the message it delivered (refcount 1)."""

    def __init__(self, offset: int):
        self.message = Message("news", 0, offset, 0.0, 0, None, None, b"{}", None)
        self.message.incref()

    def ack(self) -> bool:
        return self.message.ack(consumer=None)


def take(offsets) -> list[FakeEvent]:
    return [FakeEvent(o) for o in offsets]


def faust_acks_on_return(events) -> None:
    """What ``take_events`` does when the loop body returns."""
    for e in events:
        e.message.ack(consumer=None)


def test_events_are_acknowledged_only_after_their_commit_in_order():
    async def scenario():
        stage = CommitStage(FakeApp(), "news")
        committed: list[int] = []
        release = asyncio.Event()
        seen_unacked_during_commit = []

        async def commit(batch_no, events):
            if batch_no == 0:
                await release.wait()
            seen_unacked_during_commit.append(all(not e.message.acked for e in events))
            committed.append(batch_no)

        batches = [take(range(i * 3, i * 3 + 3)) for i in range(2)]
        for n, events in enumerate(batches):
            stage.hold(events)
            await stage.submit(events, lambda n=n, events=events: commit(n, events))
            faust_acks_on_return(events)
        await asyncio.sleep(0.01)
        assert committed == []
        assert not any(e.message.acked for b in batches for e in b)  # the loop returned, still held
        release.set()
        await stage.drain()
        assert committed == [0, 1]
        assert seen_unacked_during_commit == [True, True]
        assert all(e.message.acked for b in batches for e in b)

    asyncio.run(scenario())


def test_submit_waits_when_the_queue_is_full():
    async def scenario():
        stage = CommitStage(FakeApp(), "news", depth=1)
        release = asyncio.Event()

        async def slow():
            await release.wait()

        await stage.submit(take([0]), slow)  # being written
        await asyncio.sleep(0)
        await stage.submit(take([1]), slow)  # waiting
        third = asyncio.create_task(stage.submit(take([2]), slow))
        await asyncio.sleep(0.05)
        assert not third.done()
        release.set()
        await asyncio.wait_for(third, 1)
        await asyncio.wait_for(stage.drain(), 1)

    asyncio.run(scenario())


def test_a_failing_commit_crashes_the_worker_and_leaves_the_batch_unacknowledged():
    async def scenario():
        app = FakeApp()
        stage = CommitStage(app, "news")
        events = take([0, 1])
        stage.hold(events)

        async def broken():
            raise RuntimeError("bug")

        await stage.submit(events, broken)
        faust_acks_on_return(events)
        for _ in range(10):
            await asyncio.sleep(0)
        assert [str(e) for e in app.crashed] == ["bug"]
        assert not any(e.message.acked for e in events)

    asyncio.run(scenario())


@pytest.mark.parametrize("depth", [1, 3])
def test_many_batches_all_acknowledged(depth):
    async def scenario():
        stage = CommitStage(FakeApp(), "news", depth=depth)
        order: list[int] = []
        batches = [take([i]) for i in range(20)]
        for i, events in enumerate(batches):
            stage.hold(events)

            async def commit(i=i):
                await asyncio.sleep(0.001 * (i % 3))
                order.append(i)

            await stage.submit(events, commit)
            faust_acks_on_return(events)
        await stage.drain()
        assert order == list(range(20))
        assert all(b[0].message.acked for b in batches)

    asyncio.run(scenario())
