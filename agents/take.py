"""Micro-batches from a Faust stream whose wait counts from when the batch opened, not from the last one.

Faust's ``Stream.take_events(max_, within)`` waits ``within`` seconds (or for ``max_`` events)
*after* the loop body returns. While the body runs the models, new events queue in the stream's
channel, so they wait for the models and then ``within`` more: at a steady load every batch pays
the models' time plus ``within``, and the worker saturates at
``max_batch / (model time of a full batch + within)``, well below its backlog throughput once the
models are fast (``docs/BENCHMARKS.md``, latency).

``take_events`` here is Faust's own (buffering processor, passive consumption, acknowledgement
after the body returns), with one change: a batch is due ``within`` seconds after it *opened*
(the previous batch was handed out, or an empty window ended). When the body ran longer than
that, the events that queued meanwhile are handed out after a short grace for the stream to move
them into the buffer. A full buffer is handed out at once, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import faust
from mode.utils.aiter import aiter
from mode.utils.futures import notify

GRACE = 0.005  # seconds for the stream to move queued events into the buffer


def take_events(stream: faust.StreamT, max_: int, within: float) -> AsyncIterator[Sequence[faust.EventT]]:
    """Batches of at most ``max_`` events, each handed out when full or ``within`` seconds after it opened."""
    agen = _take_events(stream, max_, within)
    stream._active_agens.add(agen)  # noqa: SLF001 - as Faust's own take family: closed when the stream stops
    return agen


async def _take_events(stream: faust.StreamT, max_: int, within: float) -> AsyncIterator[Sequence[faust.EventT]]:
    events: list[faust.EventT] = []  # the batch being filled
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    buffer_consuming: asyncio.Future | None = None
    enable_acks = stream.enable_acks

    async def add_to_buffer(value):
        nonlocal buffer_consuming
        try:
            if buffer_consuming is not None:  # the body is reading the batch: wait until it is done
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            if len(events) >= max_:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # never more than max_ events in a batch
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:  # noqa: BLE001 - as Faust: a failure here crashes the stream
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # events are acknowledged below, after the body has read them
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))  # noqa: SLF001 - as Faust's take_events: consume in the background
    opened = time.monotonic()
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_full, timeout=max(opened + within - time.monotonic(), GRACE))
            if events and (buffer_full.is_set() or time.monotonic() >= opened + within):
                buffer_consuming = asyncio.get_running_loop().create_future()
                opened = time.monotonic()  # what arrives from now on waits in the channel: its window opens
                try:
                    yield list(events)
                finally:
                    for event in events:
                        await stream.ack(event)
                    events.clear()
                    notify(buffer_consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
            elif not events and time.monotonic() >= opened + within:
                opened = time.monotonic()  # an empty window: the next one opens now
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)  # noqa: SLF001
