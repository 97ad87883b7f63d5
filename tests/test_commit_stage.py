"""The commit stage under Faust's own stream: in order, acknowledged only after the commit,
bounded, crashes on bugs.

The agent loop is the worker's (``agents.take.take_events``, ``hold``, ``submit``) on a real
``faust.App``: a real ``Stream`` over an in-memory channel, where ``take_events``
acknowledges each batch when the loop body returns (as Faust's own), and the app's real ``Consumer``,
whose acknowledgement bookkeeping gives the offset Faust would commit. Only the broker
is missing (the consumer never connects).
"""

import asyncio
import functools

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.commit_stage import CommitStage
from agents.take import take_events

TOPIC = "news"
PARTITION = TP(TOPIC, 0)


async def settle() -> None:
    """Let the loop, take_events and the stage run until they wait."""
    await asyncio.sleep(0.05)


async def until(predicate, timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            break
        await asyncio.sleep(0.01)
    await settle()


class Agent:
    """An agent loop as in agents/worker.py, fed by hand instead of by Kafka."""

    def __init__(self, max_batch: int = 3, depth: int = 1, hold: bool = True, within: float = 0.01,
                 body_seconds: float = 0.0):
        self.app = faust.App("commit-stage-test", broker="kafka://127.0.0.1:1", store="memory://")
        self.app.flow_control.resume()  # the worker does this once partitions are assigned
        self.app.topics.acking_topics.add(TOPIC)  # the conductor does this for a subscribed topic
        self.consumer = self.app.consumer
        self.channel = self.app.channel()
        self.stream = self.app.stream(self.channel)
        self.stage = CommitStage(self.app, TOPIC, depth=depth)
        self.max_batch = max_batch
        self.within = within
        self.body_seconds = body_seconds  # the models' time in the loop body
        self.hold = hold
        self.messages: list[ConsumerMessage] = []
        self.taken: list[list[int]] = []  # offsets of each batch the loop took
        self.taken_at: list[float] = []  # and when
        self.returned = 0  # loop bodies that returned: take_events has acknowledged their events
        self.task: asyncio.Task | None = None

    async def deliver(self, n: int) -> None:
        """What the conductor does with a fetched record: one reference, tracked, onto the channel."""
        for _ in range(n):
            offset = len(self.messages)
            message = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, None, b"{}", None,
                                      generation_id=self.app.consumer_generation_id)
            message.incref()
            self.consumer.track_message(message)
            self.messages.append(message)
            await self.channel.put(await self.channel.decode(message))

    def start(self, commit) -> None:
        """``commit(batch_no, events)`` is the batch's store step."""

        async def loop():
            async for events in take_events(self.stream, self.max_batch, self.within):
                if self.hold:
                    self.stage.hold(events)
                batch_no = len(self.taken)
                self.taken.append([e.message.offset for e in events])
                self.taken_at.append(asyncio.get_running_loop().time())
                await asyncio.sleep(self.body_seconds)
                await self.stage.submit(events, functools.partial(commit, batch_no, events))
                self.returned += 1

        self.task = asyncio.create_task(loop())

    async def wait_returned(self, n: int) -> None:
        await until(lambda: self.returned >= n)
        assert self.returned == n

    def acked(self) -> list[bool]:
        return [m.acked for m in self.messages]

    def committable(self) -> int | None:
        """The offset the consumer's next commit would write for the partition (None: nothing new)."""
        return self.consumer._new_offset(PARTITION)

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def test_without_the_stage_take_events_acknowledges_when_the_loop_body_returns():
    """The control: the harness's Faust code does acknowledge, so the other tests mean something."""

    async def scenario():
        agent = Agent(hold=False)

        async def commit(batch_no, events):
            await asyncio.Event().wait()  # never commits

        agent.start(commit)
        await agent.deliver(6)
        await agent.wait_returned(2)
        assert agent.acked() == [True] * 6
        assert agent.committable() == 6
        await agent.stop()

    asyncio.run(scenario())


def test_events_that_queued_while_the_body_ran_are_taken_as_soon_as_it_returns():
    """The wait counts from when a batch opened: events that arrived while the models ran have waited
    already, so they are not held ``within`` seconds more (Faust's own take_events holds them)."""

    async def scenario():
        agent = Agent(max_batch=100, within=0.5, body_seconds=0.8)

        async def commit(batch_no, events):
            pass

        agent.start(commit)
        await agent.deliver(1)
        delivered = asyncio.get_running_loop().time()
        await until(lambda: len(agent.taken) == 1, timeout=2)
        assert agent.taken_at[0] - delivered >= 0.3, "a lone event still waits for its window to fill"
        await agent.deliver(5)  # while the first body runs
        await until(lambda: len(agent.taken) == 2, timeout=3)
        assert agent.taken == [[0], [1, 2, 3, 4, 5]]
        assert agent.taken_at[1] - agent.taken_at[0] < 0.8 + 0.2, "held for another window after the body"
        await agent.stop()

    asyncio.run(scenario())


def test_events_are_acknowledged_only_after_their_commit_in_order():
    async def scenario():
        agent = Agent()
        gates = [asyncio.Event(), asyncio.Event()]
        committed: list[int] = []
        unacked_during_commit: list[bool] = []

        async def commit(batch_no, events):
            await gates[batch_no].wait()
            unacked_during_commit.append(not any(e.message.acked for e in events))
            committed.append(batch_no)

        agent.start(commit)
        await agent.deliver(6)
        await agent.wait_returned(2)  # both loop bodies returned: take_events acked both batches
        assert agent.taken == [[0, 1, 2], [3, 4, 5]]
        assert committed == []
        assert agent.acked() == [False] * 6
        assert agent.committable() is None
        gates[1].set()  # the second batch may not overtake the first
        await settle()
        assert committed == [] and agent.acked() == [False] * 6
        gates[0].set()
        await asyncio.wait_for(agent.stage.drain(), 1)
        assert committed == [0, 1]
        assert unacked_during_commit == [True, True]
        assert agent.acked() == [True] * 6
        assert agent.committable() == 6
        await agent.stop()

    asyncio.run(scenario())


def test_submit_waits_when_the_queue_is_full():
    async def scenario():
        agent = Agent(depth=1)
        release = asyncio.Event()

        async def commit(batch_no, events):
            await release.wait()

        agent.start(commit)
        await agent.deliver(12)
        await agent.wait_returned(2)
        await until(lambda: len(agent.taken) >= 3)
        # batch 0 being written, batch 1 waiting, batch 2's submit blocked, batch 3 not taken
        assert agent.returned == 2
        assert agent.taken == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
        assert agent.acked() == [False] * 12
        release.set()
        await agent.wait_returned(4)
        await asyncio.wait_for(agent.stage.drain(), 1)
        assert agent.acked() == [True] * 12
        assert agent.committable() == 12
        await agent.stop()

    asyncio.run(scenario())


def test_a_failing_commit_crashes_the_worker_and_leaves_the_batch_unacknowledged():
    async def scenario():
        agent = Agent()

        async def broken(batch_no, events):
            raise RuntimeError("bug")

        agent.start(broken)
        await agent.deliver(2)  # fewer than max_batch: taken when `within` runs out
        await agent.wait_returned(1)
        assert agent.taken == [[0, 1]]
        assert str(agent.app.crash_reason) == "bug"
        assert agent.acked() == [False, False]
        assert agent.committable() is None
        await agent.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("depth", [1, 3])
def test_many_batches_all_acknowledged_in_order(depth):
    async def scenario():
        agent = Agent(max_batch=1, depth=depth)
        order: list[int] = []

        async def commit(batch_no, events):
            await asyncio.sleep(0.001 * (batch_no % 3))
            order.append(batch_no)

        agent.start(commit)
        await agent.deliver(20)
        await agent.wait_returned(20)
        await asyncio.wait_for(agent.stage.drain(), 5)
        assert agent.taken == [[i] for i in range(20)]
        assert order == list(range(20))
        assert agent.acked() == [True] * 20
        assert agent.committable() == 20
        await agent.stop()

    asyncio.run(scenario())


def test_the_agent_loop_takes_the_next_batch_while_the_models_run(monkeypatch):
    """The worker's loop (``AgentLoop.run``) hands a batch's preparation to the commit stage and takes the
    next batch at once: when the models finish one batch the next is already queued for them, instead of
    waiting while the event loop builds rows and refills the stream buffer. One batch at most waits for the
    models: what arrives meanwhile gathers into the next batch instead of a queue of small ones."""
    import threading
    import types
    from concurrent.futures import ThreadPoolExecutor

    from agents.health import Health
    from agents.loop import AgentLoop, Lane

    release = threading.Event()
    parsed: list[bytes] = []
    inferred: list[int] = []

    class FakeSlowModelsPipeline:
        agent, input_topic, output_topic = TOPIC, TOPIC, f"{TOPIC}.enriched"
        parent, children = None, frozenset()

        def parse(self, raw):
            parsed.append(raw)
            return types.SimpleNamespace(id=str(len(parsed)))

        def infer(self, events):
            inferred.append(len(events))
            release.wait(5)  # the first batch stays in the models until the test lets it go
            return events

    monkeypatch.setattr("agents.loop.record_lag", lambda app, events, sensor=None: None)  # this consumer never started

    async def scenario():
        agent = Agent(max_batch=3)
        models = ThreadPoolExecutor(1)
        loop = AgentLoop(agent.app, FakeSlowModelsPipeline(), None, Lane(models, ThreadPoolExecutor(1)), None,
                         Health(), max_batch=3, max_wait=0.01, model_timeout=30)
        task = asyncio.create_task(loop.run(agent.stream))
        await agent.deliver(9)
        await until(lambda: len(parsed) == 9, timeout=0.5)
        try:
            assert inferred == [3], "the first batch is still in the models"
            assert len(parsed) == 6, "the second batch was taken and parsed meanwhile, not a third"
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
            models.shutdown(wait=True)

    asyncio.run(scenario())
