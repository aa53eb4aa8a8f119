"""Fetched records handed to the agents without four asyncio tasks each, and without Faust's
generic decoding for topics of raw bytes.

Faust's fetch loop hands every record to the conductor through `Service.wait_first(callback,
suspend_flow)`, which wraps the callback and three events in tasks so that a callback blocked
on a full queue is abandoned when a rebalance suspends the flow. Almost every callback
finishes without waiting at all (it decodes the record and puts it on a queue with room), and
the four tasks then cost more than the record's whole journey through the agent.

`eager_wait_first` runs the first coroutine up to its first real wait before anything else.
If it finishes there, that is the result, exactly as `wait_first` would have returned it. If
it waits, the rest of it becomes a task and `wait_first` proceeds as before, with the same
abandon-on-suspend behaviour. Installed on Faust's consumer only (`install_eager_delivery`).

`raw_handler` is the conductor's per-partition hand-over for a partition read by one channel
of raw bytes (every topic of the worker): the event is built from the record's bytes as they
are, where Faust's compiled handler resolves the serializer registry for the key and the
value, and waits on its producer buffer (the worker never fills it: it sends through
aiokafka), for every record. What it keeps: waiting while the flow is suspended (a
rebalance), the record's reference count, the channel's back-pressure and its wait for room.
And the conductor looks a partition's hand-over up under its lock only while the lock is held
(a rebalance rebuilding the map), not for every record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import Service, WaitResults

_wait_first = Service.wait_first


async def _finish(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Drive `coro`, which has already run up to awaiting `waiting`, as a task would."""
    while True:
        try:
            if waiting is None:  # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False  # as a task does before waiting
                try:
                    await asyncio.wait([waiting])
                except asyncio.CancelledError:
                    # cancelled ourselves: cancel what it waits on, as a task does, and let
                    # the coroutine see the cancellation when it resumes
                    waiting.cancel()
                    await asyncio.wait([waiting])
            waiting = coro.send(None)
        except StopIteration as finished:
            return finished.value


def _first_step(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """(True, result) if `coro` finished without waiting, else (False, what it waits on)."""
    try:
        return False, coro.send(None)
    except StopIteration as finished:
        return True, finished.value


def _close(coros: tuple[Any, ...]) -> None:
    """Close coroutines never started (no "never awaited" warnings)."""
    for coro in coros:
        if isinstance(coro, Generator | Coroutine):
            coro.close()


async def eager_wait_first(self: Service, *coros: Any, timeout: Any = None) -> WaitResults:
    """`Service.wait_first`, with the first coroutine run eagerly (see the module)."""
    first = coros[0] if coros else None
    if not asyncio.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
        return await _wait_first(self, *coros, timeout=timeout)
    try:
        finished, outcome = _first_step(first)
    except BaseException:
        _close(coros[1:])
        raise
    if finished:
        _close(coros[1:])
        return WaitResults([first], [outcome], False)
    rest = asyncio.ensure_future(_finish(first, outcome))
    return await _wait_first(self, rest, *coros[1:], timeout=timeout)


def _is_raw(channel: Any) -> bool:
    return bool(
        channel.key_type is bytes
        and channel.value_type is bytes
        and channel.key_serializer == "raw"
        and channel.value_serializer == "raw"
    )


def raw_handler(conductor: Any, tp: Any, channel: Any) -> Callable[[Any], Awaitable[None]]:
    """The conductor's hand-over of `tp`'s records to `channel`, a raw bytes topic (module)."""
    app = conductor.app
    acquire_flow = app.flow_control.acquire
    make_event = app.conf.Event
    on_topic_buffer_full = app.sensors.on_topic_buffer_full
    consumer = app.consumer
    queue = channel.queue  # one per channel, created when the agent subscribed

    def on_pressure_high() -> None:
        on_topic_buffer_full(tp)
        consumer.on_buffer_full(tp)

    def on_pressure_drop() -> None:
        consumer.on_buffer_drop(tp)

    async def on_message(message: Any) -> None:
        await acquire_flow()
        # `incref` without its lock: Faust builds, hands over and acks its messages on the
        # event loop's thread only (the consumer's thread fetches raw records).
        message.refcount += 1
        event = make_event(app, message.key, message.value, message.headers, message)
        if queue.full():
            on_topic_buffer_full(tp)
            await queue.put(event)
        else:
            queue.put_nowait_enhanced(
                event, on_pressure_high=on_pressure_high, on_pressure_drop=on_pressure_drop
            )

    return on_message


def unlocked_lookup(conductor: Any) -> Callable[[Any], Awaitable[None]]:
    """The conductor's `on_message`: the lock is taken only if a rebalance holds it."""
    lock = conductor._tp_to_callback_lock
    callbacks = conductor._tp_to_callback

    async def on_message(message: Any) -> None:
        if lock.locked():
            async with lock:
                callback = callbacks[message.tp]
        else:
            callback = callbacks[message.tp]
        await callback(message)

    return on_message


def install_eager_delivery() -> None:
    """Make Faust's consumers hand records over eagerly, and raw ones without decoding
    (idempotent)."""
    from faust.transport.conductor import Conductor
    from faust.transport.consumer import Consumer

    Consumer.wait_first = eager_wait_first  # type: ignore[method-assign]
    if getattr(Conductor._build_handler, "_raw_first", False):
        return
    build_handler = Conductor._build_handler

    def _build_handler(self: Any, tp: Any, channels: Any) -> Any:
        if len(channels) == 1:
            (channel,) = channels
            if _is_raw(channel):
                return raw_handler(self, tp, channel)
        return build_handler(self, tp, channels)

    _build_handler._raw_first = True  # type: ignore[attr-defined]
    Conductor._build_handler = _build_handler  # type: ignore[method-assign]
    compile_handler = Conductor._compile_message_handler

    def _compile_message_handler(self: Any) -> Any:
        return compile_handler(self) if self.app.client_only else unlocked_lookup(self)

    Conductor._compile_message_handler = _compile_message_handler  # type: ignore[method-assign]
