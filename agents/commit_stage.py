"""The commit stage: store, produce and acknowledge batches in order, behind the models.

An agent's loop prepares a batch (parse, models) and hands it here; while this
stage writes the batch to the database and produces its outputs, the loop is
already running the models on the next batch. ``take_events`` (Faust's, ``agents.take``) would
acknowledge a batch as soon as the loop body returns, so each event's message
is held (its reference count raised) when it is taken and released only after
its batch is committed and produced. Offsets therefore still advance only past
stored events; a crash replays at most the batches in flight.

The queue is bounded (``depth`` batches waiting, one being written), so during a
database outage the loop stops taking batches, Faust's stream buffer fills and
the consumer pauses: memory stays bounded.

A failure here is a bug, not bad input (bad rows become dead letters and
outages are retried by the sink), so it crashes the worker (``loop_bug`` in the
error policy, ``agents/errors.py``, whose only action is ``crash``): the held
events are never acknowledged and the restart replays them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import faust

from agents import errors
from agents.errors import Failure

log = logging.getLogger(__name__)


class CommitStage:
    def __init__(self, app: faust.App, name: str, depth: int = 1, policy: errors.ErrorPolicy | None = None):
        self.app = app
        self.policy = policy or errors.default
        self.name = name
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=depth)
        self._task: asyncio.Task | None = None

    @staticmethod
    def hold(events: Sequence[faust.EventT]) -> None:
        """Keep Faust from acknowledging these events when the loop body returns."""
        for event in events:
            event.message.incref()

    async def submit(self, events: Sequence[faust.EventT], commit: Callable[[], Awaitable[None]]) -> None:
        """Queue a held batch's commit; waits while ``depth`` batches are already waiting."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-commit-stage")
        await self._queue.put((events, commit))

    async def drain(self) -> None:
        """Wait until every submitted batch is committed and acknowledged."""
        await self._queue.join()

    async def fail(self, exc: BaseException) -> None:
        # crash: the only action a bug in the loop allows (errors.ALLOWED); asked so that a callable policy
        # sees every failure
        self.policy.action(Failure.LOOP_BUG, exc)
        log.critical("%s: batch processing failed (%s: %r); stopping the worker so that the held batches are "
                     "replayed on restart", self.name, type(exc).__name__, exc)
        await self.app.crash(exc)

    async def _run(self) -> None:
        while True:
            events, commit = await self._queue.get()
            try:
                await commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker stops; the batch stays unacknowledged
                await self.fail(exc)
                return
            for event in events:
                event.ack()
            self._queue.task_done()
