"""Records handed over eagerly (streams.app.eager): the same outcome as Faust's wait_first,
whether the hand-over finishes at once, waits, or is abandoned when the flow is suspended
(a rebalance), so no record is delivered twice or lost by the shortcut (RULES.md R13)."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from mode import Service
from mode.utils.locks import Event

from streams.app.eager import eager_wait_first


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
