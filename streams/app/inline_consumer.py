"""Faust's Kafka consumer run on the worker's own event loop, not in a thread of its own.

faust-streaming runs its aiokafka consumer in a second thread with a second event loop. Each
call the worker makes to it (every fetch of records, every commit and seek) crosses between
the two loops through a method queue and `call_soon_threadsafe`, and back. Both threads run
Python under one interpreter lock, so the second thread adds no CPU to the worker. What it
adds is waiting. A socket write in either thread gives the lock up, and the writer then
waits for the other thread to hand it back, for up to the interpreter's switch interval
(5 ms). Measured on a worker under a light load (docs/benchmarks.md, round 14):
- its socket writes took 0.6 / 4.9 ms (median / p90) in the main thread and 1.4 / 8.4 ms in
  the consumer's; on one loop, 0.1 / 0.3 ms;
- a fetch's records reached the main thread 9.5 ms (median) after the previous fetch's had;
  on one loop, 4.2 ms.

`InlineConsumerThread` keeps Faust's consumer service and its interface, and runs it as a
service of the worker's loop: started as a task there, its calls awaited directly. What the
thread did on a loop of its own (the group's heartbeat, the fetches) now shares the worker's
loop. Nothing on that loop may block it for longer than the group's session timeout: an
agent's round takes milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils.futures import maybe_async


class InlineConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer service, on the loop of the worker that owns it."""

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        loop = kwargs.get("loop") or asyncio.get_event_loop()
        super().__init__(consumer, thread_loop=loop, **kwargs)
        self._serving: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start the service as a task of this loop; returns once it runs, as the thread's
        start does (and raises what its start raised)."""
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = self.parent_loop.create_future()
        try:
            self._serving = asyncio.ensure_future(self._serve())
            if not self.should_stop:
                await self._thread_running
        finally:
            self._thread_running = None

    async def stop(self) -> None:
        """Stop the service and wait for its task (there is no thread to join)."""
        await super().stop()
        if self._serving is not None:
            await asyncio.wait([self._serving])

    async def _gather_remaining_tasks(self) -> None:
        # The thread's loop was the consumer's alone, and its stop cancelled every task left
        # on it. This loop is the worker's: the worker's own stop gathers what is left.
        return None

    async def call_thread(
        self, fun: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """Run `fun` here: it would have run on the consumer's loop, which is this one."""
        return await maybe_async(fun(*args, **kwargs))


def install_inline_consumer() -> None:
    """Make Faust's aiokafka consumer run its service on the worker's loop."""

    def new_consumer_thread(self: Any) -> InlineConsumerThread:
        return InlineConsumerThread(self, loop=self.loop, beacon=self.beacon)

    faust_aiokafka.Consumer._new_consumer_thread = new_consumer_thread  # type: ignore[method-assign]
