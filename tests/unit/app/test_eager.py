"""Records handed over eagerly (streams.app.eager): the same outcome as Faust's wait_first,
whether the hand-over finishes at once, waits, or is abandoned when the flow is suspended
(a rebalance), so no record is delivered twice or lost by the shortcut (RULES.md R13)."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode import Service
from mode.utils.locks import Event

from streams.app.eager import eager_wait_first, install_eager_delivery


class Fetcher(Service):
    """A bare mode service, as Faust's consumer is one."""


def test_r13_a_hand_over_that_never_waits_returns_at_once_and_starts_nothing_else() -> None:
    async def scenario() -> None:
        service, suspend = Fetcher(), Event()
        delivered: list[int] = []

        async def hand_over() -> str:
            delivered.append(1)
            return "queued"

        tasks_before = len(asyncio.all_tasks())
        result = await eager_wait_first(service, hand_over(), suspend.wait())
        assert result.results == ["queued"]
        assert not result.stopped
        assert delivered == [1]
        assert len(asyncio.all_tasks()) == tasks_before  # no task was created

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an un-awaited suspend.wait() would warn
        asyncio.run(scenario())


def test_r13_a_hand_over_that_waits_is_finished_as_a_task() -> None:
    async def scenario() -> None:
        service, suspend = Fetcher(), Event()
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def hand_over() -> str:
            steps.append("full queue")
            await room
            await asyncio.sleep(0)
            steps.append("queued")
            return "queued"

        asyncio.get_running_loop().call_later(0.01, room.set_result, None)
        result = await eager_wait_first(service, hand_over(), suspend.wait())
        assert result.results == ["queued"]
        assert steps == ["full queue", "queued"]

    asyncio.run(scenario())


def test_r13_a_waiting_hand_over_is_abandoned_when_the_flow_is_suspended() -> None:
    async def scenario() -> None:
        service, suspend = Fetcher(), Event()
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen: list[str] = []

        async def hand_over() -> None:
            try:
                await never
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        asyncio.get_running_loop().call_later(0.01, suspend.set)
        result = await eager_wait_first(service, hand_over(), suspend.wait())
        assert result.results == [True]  # the suspension won, as with wait_first
        await asyncio.sleep(0.01)
        assert seen == ["cancelled"]  # the blocked hand-over saw its cancellation
        assert never.cancelled()

    asyncio.run(scenario())


def test_r13_an_error_in_the_hand_over_reaches_the_caller() -> None:
    async def scenario() -> None:
        async def hand_over() -> None:
            raise ValueError("undecodable")

        with pytest.raises(ValueError, match="undecodable"):
            await eager_wait_first(Fetcher(), hand_over(), Event().wait())

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(scenario())


def raw_app() -> tuple[Any, Any, Any]:
    """A Faust app (never started), with eager delivery installed, and the channel of a raw
    bytes topic as the conductor sees it after the agent subscribed."""
    install_eager_delivery()
    app = faust.App("test-eager", broker="kafka://127.0.0.1:1", stream_buffer_maxsize=2)
    topic = app.topic(
        "lead-journal", key_type=bytes, value_type=bytes, key_serializer="raw",
        value_serializer="raw",
    )  # fmt: skip
    channel = aiter(topic)  # the agent's iterator channel: what the conductor delivers to
    app.flow_control.resume()
    return app, topic, channel


def is_raw_handler(handler: Any) -> bool:
    return str(getattr(handler, "__qualname__", "")).startswith("raw_handler")


def record(offset: int, key: bytes | None = b"lead-1", value: bytes = b"v") -> Any:
    return ConsumerMessage("lead-journal", 3, offset, 0.0, 0, None, key, value, None)


def test_r13_a_raw_record_reaches_its_channel_as_its_own_bytes() -> None:
    async def scenario() -> None:
        app, _, channel = raw_app()
        tp = TP("lead-journal", 3)
        handler = app.topics._build_handler(tp, {channel})
        assert is_raw_handler(handler)
        message = record(7)
        await handler(message)
        event = channel.queue.get_nowait()
        assert (event.key, event.value, event.message) == (b"lead-1", b"v", message)
        assert message.refcount == 1  # acked once, by the one agent that reads it
        await handler(record(8, key=None))
        assert channel.queue.get_nowait().key is None

    asyncio.run(scenario())


def test_r13_a_raw_record_waits_while_the_flow_is_suspended_and_for_room() -> None:
    async def scenario() -> None:
        app, _, channel = raw_app()
        handler = app.topics._build_handler(TP("lead-journal", 3), {channel})
        app.flow_control.suspend()  # a rebalance
        waiting = asyncio.ensure_future(handler(record(1)))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert channel.queue.empty()
        app.flow_control.resume()
        await asyncio.wait_for(waiting, 1)
        await handler(record(2))
        full = asyncio.ensure_future(handler(record(3)))  # the queue holds two
        await asyncio.sleep(0.01)
        assert not full.done()
        assert channel.queue.get_nowait().message.offset == 1
        await asyncio.wait_for(full, 1)
        assert [channel.queue.get_nowait().message.offset for _ in range(2)] == [2, 3]

    asyncio.run(scenario())


def test_r13_other_channels_keep_fausts_handler() -> None:
    async def scenario() -> None:
        app, _, channel = raw_app()
        typed = aiter(app.topic("json-topic"))
        tp = TP("lead-journal", 3)
        assert not is_raw_handler(app.topics._build_handler(tp, {typed}))
        assert not is_raw_handler(app.topics._build_handler(tp, {channel, typed}))

    asyncio.run(scenario())


def test_r13_the_conductor_waits_for_a_rebalance_rebuilding_its_hand_overs() -> None:
    async def scenario() -> None:
        app, _, channel = raw_app()
        conductor = app.topics
        tp = TP("lead-journal", 3)
        conductor._tp_to_callback[tp] = conductor._build_handler(tp, {channel})
        await conductor.on_message(record(1))
        assert channel.queue.qsize() == 1
        async with conductor._tp_to_callback_lock:  # a rebalance rebuilding the map
            waiting = asyncio.ensure_future(conductor.on_message(record(2)))
            await asyncio.sleep(0.01)
            assert not waiting.done()
        await asyncio.wait_for(waiting, 1)
        assert channel.queue.qsize() == 2

    asyncio.run(scenario())
