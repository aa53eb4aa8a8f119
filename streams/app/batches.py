"""An agent's events taken from its channel a batch at a time, without Faust's stream.

Faust hands an agent's records to it through the channel's queue; `Stream.take_events` then
moves them one by one through a second task (the stream iterator, its sensors, a buffer and
two events), and blocks that task while the agent's round runs, so the queue fills and the
fetch loop stalls for every agent behind it. A round takes whatever its queue already holds
instead: under a backlog that is a full batch at once; with light traffic a round starts from
its first record, with whatever else is queued then, or after waiting up to `wait_s` for
more if the worker is given a batch wait (none by default: each hop of a reward would pay it).
A batch is measured in messages where a record can hold many (streams.app.packing), so a
round's work and the state it keeps in flight stay bounded by the batch size.

What the stream iterator does for each record that matters here is kept: records fetched
before a rebalance (another generation, or flow control suspended) are dropped, never acked
(the continuity guard seeks back to them), and every other record is tracked as unacked, so a
rebalance waits for the round that holds it. The agent acks its records after its round
(`ack`); what Faust's sensors counted per record is left out (`/metrics` has our own).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from faust.types import EventT, StreamT
from faust.types.tuples import ack_lock

from streams.app.continuity import drop


async def take_batches(
    stream: StreamT[Any],
    size: int,
    wait_s: float = 0.0,
    weight: Callable[[EventT[Any]], int] | None = None,
) -> AsyncIterator[list[EventT[Any]]]:
    """Batches of the agent's `stream` weighing at most `size` (an event weighs `weight` of
    it, by default 1; a batch always takes its first event), each as soon as one event is
    queued (waiting up to `wait_s` more for the batch to fill, if given)."""
    channel: Any = aiter(stream.channel)  # subscribes, as the stream's own iteration would
    queue = channel.queue
    app = stream.app
    consumer: Any = app.consumer
    flow = app.flow_control
    acking = app.topics.acking_topics
    while True:
        try:
            events = await _take(queue, size, wait_s, weight)
        except StopAsyncIteration:  # what Faust throws into the channel to stop the agent
            return
        generation = app.consumer_generation_id
        active = flow.is_active()
        batch = []
        for event in events:
            message = event.message
            if not active or message.generation_id != generation:
                drop(event, consumer)
                continue
            if not message.tracked and message.topic in acking:
                message.tracked = True
                consumer._unacked_messages.add(message)
            batch.append(event)
        if batch:
            yield batch


async def _take(
    queue: Any, size: int, wait_s: float, weight: Callable[[EventT[Any]], int] | None
) -> list[EventT[Any]]:
    """At least one event, then whatever else is queued or arrives within `wait_s`, while the
    batch weighs less than `size`. A queued event that would take it past `size` stays at
    the queue's head: the next batch starts with it."""
    first = await queue.get()
    events = [first]
    taken = 1 if weight is None else weight(first)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while taken < size:
        if not queue.empty():
            if weight is None:
                taken += 1
            elif queue._queue:  # asyncio.Queue's deque (empty: an error thrown in waits)
                heavier = weight(queue._queue[0])
                if taken + heavier > size:
                    break
                taken += heavier
            events.append(queue.get_nowait())
            continue
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            event = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            break
        events.append(event)  # off the queue already: it joins this batch whatever it weighs
        taken += 1 if weight is None else weight(event)
    return events


def ack(events: list[EventT[Any]], consumer: Any) -> None:
    """The events' records done: their offsets may be committed (dropped ones stay out).

    What `Message.ack` does for each, under Faust's ack lock taken once for the round rather
    than three times per record (`ack`, `decref`, the consumer's `ack`)."""
    with ack_lock:
        for event in events:
            message = event.message
            if message.acked:
                continue
            message.refcount = refcount = max(message.refcount - 1, 0)
            if not refcount:
                message.on_final_ack(consumer)
