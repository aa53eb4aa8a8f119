"""Batches taken from an agent's channel (streams.app.batches): what is queued, in order, at
once; records of an earlier generation never applied nor acked; every record held unacked
until its round acks it, so no offset is committed ahead of its round (RULES.md R13).

A real Faust app and channel, never started: records are put on the channel's queue as the
conductor would after a fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
from faust.types import EventT
from faust.types.tuples import ConsumerMessage

from streams.app.batches import ack, take_batches

TOPIC = "lead-journal"


def scenario(body: Callable[[Any, Any, Callable[..., Awaitable[None]]], Awaitable[None]]) -> None:
    """Run `body(app, channel, put)` against a fresh app whose flow is active."""

    async def run() -> None:
        app = faust.App("test-batches", broker="kafka://127.0.0.1:1")
        topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, **_raw())
        stream = app.stream(topic)
        app.topics._acking_topics.add(TOPIC)  # as the conductor's subscription does
        app.flow_control.resume()

        async def put(*offsets: int, generation: int | None = None) -> None:
            channel = stream.channel
            for offset in offsets:
                message = ConsumerMessage(
                    TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None,
                    generation_id=app.consumer_generation_id if generation is None else generation,
                )  # fmt: skip
                message.incref(1)  # one channel, as the conductor counts them
                channel.queue.put_nowait(await channel.decode(message))

        await body(app, stream, put)

    asyncio.run(run())


def _raw() -> dict[str, Any]:
    return {"key_serializer": "raw", "value_serializer": "raw"}


def offsets(events: list[EventT[Any]]) -> list[int]:
    return [event.message.offset for event in events]


def test_r13_a_batch_is_what_is_queued_in_order_and_starts_without_waiting_to_fill() -> None:
    async def body(app: Any, stream: Any, put: Callable[..., Awaitable[None]]) -> None:
        batches: AsyncIterator[list[EventT[Any]]] = take_batches(stream, size=3)
        await put(0, 1, 2, 3, 4)
        assert offsets(await anext(batches)) == [0, 1, 2]
        assert offsets(await anext(batches)) == [3, 4]
        waiting = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # nothing queued: nothing to do
        await put(5)
        assert offsets(await asyncio.wait_for(waiting, 1)) == [5]

    scenario(body)


def test_r13_a_batch_of_packed_records_is_measured_in_messages_and_keeps_their_order() -> None:
    """A record weighing more than what is left of the batch starts the next one; a record
    heavier than a whole batch makes a batch of its own."""
    weights = {0: 2, 1: 2, 2: 3, 3: 9, 4: 1}

    async def body(app: Any, stream: Any, put: Callable[..., Awaitable[None]]) -> None:
        batches = take_batches(stream, size=5, weight=lambda e: weights[e.message.offset])
        await put(0, 1, 2, 3, 4)
        assert offsets(await anext(batches)) == [0, 1]
        assert offsets(await anext(batches)) == [2]
        assert offsets(await anext(batches)) == [3]
        assert offsets(await anext(batches)) == [4]

    scenario(body)


def test_r13_a_batch_given_time_to_fill_waits_for_more_records() -> None:
    async def body(app: Any, stream: Any, put: Callable[..., Awaitable[None]]) -> None:
        batches = take_batches(stream, size=3, wait_s=0.5)
        await put(0)
        waiting = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await put(1, 2)
        assert offsets(await asyncio.wait_for(waiting, 1)) == [0, 1, 2]

    scenario(body)


def test_r13_records_are_held_unacked_until_their_round_acks_them() -> None:
    async def body(app: Any, stream: Any, put: Callable[..., Awaitable[None]]) -> None:
        consumer = app.consumer
        batches = take_batches(stream, size=10)
        await put(0, 1)
        batch = await anext(batches)
        assert {m.offset for m in consumer._unacked_messages} == {0, 1}
        assert not consumer._acked[batch[0].message.tp]
        ack(batch, consumer)
        assert not consumer._unacked_messages
        assert sorted(consumer._acked[batch[0].message.tp]) == [0, 1]

    scenario(body)


def test_r13_records_fetched_before_a_rebalance_are_dropped_never_acked() -> None:
    async def body(app: Any, stream: Any, put: Callable[..., Awaitable[None]]) -> None:
        consumer = app.consumer
        batches = take_batches(stream, size=10)
        await put(0, 1, generation=app.consumer_generation_id - 1)
        await put(2)
        batch = await anext(batches)
        assert offsets(batch) == [2]
        ack(batch, consumer)
        assert sorted(consumer._acked[batch[0].message.tp]) == [2]  # 0 and 1 never acked

        app.flow_control.suspend()  # a rebalance under way: nothing is applied
        await put(3)
        waiting = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        app.flow_control.resume()
        await put(4)
        assert offsets(await asyncio.wait_for(waiting, 1)) == [4]
        assert 3 not in consumer._acked[batch[0].message.tp]

    scenario(body)


def test_r13_an_agent_told_to_stop_ends_its_batches_without_an_error() -> None:
    async def body(app: Any, stream: Any, put: Callable[..., Awaitable[None]]) -> None:
        batches = take_batches(stream, size=10)
        waiting = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.01)
        stream.channel._throw(StopAsyncIteration())  # what Faust's actor does on stop
        try:
            await asyncio.wait_for(waiting, 1)
        except StopAsyncIteration:
            pass
        else:
            raise AssertionError("the batches went on after the stop")

    scenario(body)
