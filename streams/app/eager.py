"""Fetched records handed to the agents without four asyncio tasks each.

Faust's fetch loop hands every record to the conductor through `Service.wait_first(callback,
suspend_flow)`, which wraps the callback and three events in tasks so that a callback blocked
on a full queue is abandoned when a rebalance suspends the flow. Almost every callback
finishes without waiting at all (it decodes the record and puts it on a queue with room), and
the four tasks then cost more than the record's whole journey through the agent.

`eager_wait_first` runs the first coroutine up to its first real wait before anything else.
If it finishes there, that is the result, exactly as `wait_first` would have returned it. If
it waits, the rest of it becomes a task and `wait_first` proceeds as before, with the same
abandon-on-suspend behaviour. Installed on Faust's consumer only (`install_eager_delivery`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
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


def install_eager_delivery() -> None:
    """Make Faust's consumers hand records over eagerly (idempotent)."""
    from faust.transport.consumer import Consumer

    Consumer.wait_first = eager_wait_first  # type: ignore[method-assign]
