"""R13 across rebalances: every record of a partition is applied, in order, from the group's
committed offset, whatever Faust hands the agent (streams.app.continuity)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from faust.types import TP

from streams.app.continuity import (
    STALLED_CHECKS,
    Continuity,
    ReadOffsets,
    _commit_point,
    install_continuity,
)

TOPIC = TP("invoice-paid", 3)


class Message:
    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset, self.acked = tp, offset, False


class Event:
    def __init__(self, tp: TP, offset: int) -> None:
        self.message = Message(tp, offset)


class Consumer:
    def __init__(self, *assigned: TP) -> None:
        self.assigned = set(assigned)
        self.sought: list[tuple[TP, int]] = []
        self._unacked_messages: set[Any] = set()
        self.reads = 0

    def assignment(self) -> set[TP]:
        self.reads += 1
        return self.assigned

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


def guard(
    consumer: Consumer, committed: dict[TP, int], empty: frozenset[int] = frozenset()
) -> Continuity:
    """`empty`: offsets holding no record (transaction markers) on the broker."""

    async def starts(tps: set[TP]) -> dict[TP, int]:
        return {tp: committed[tp] for tp in tps}

    async def gap_is_empty(tp: TP, first: int, end: int) -> bool:
        return all(o in empty for o in range(first, end))

    return Continuity(starts, gap_is_empty, lambda: consumer)


def offsets(events: list[Any]) -> list[int]:
    return [e.message.offset for e in events]


async def test_r13_a_record_skipped_after_a_rebalance_is_sought_back_not_lost() -> None:
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 41})
    skipped = [Event(TOPIC, 42), Event(TOPIC, 43)]  # Faust started one past the committed
    assert await continuity.admit(skipped) == []
    assert consumer.sought == [(TOPIC, 41)]
    assert all(e.message.acked for e in skipped)  # dropped: Faust records no offset for them
    again = [Event(TOPIC, o) for o in (41, 42, 43)]
    assert offsets(await continuity.admit(again)) == [41, 42, 43]


async def test_r13_records_behind_the_committed_offset_or_applied_are_dropped() -> None:
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 10})
    assert offsets(await continuity.admit([Event(TOPIC, o) for o in (8, 9, 10, 11)])) == [10, 11]
    assert offsets(await continuity.admit([Event(TOPIC, o) for o in (10, 11, 12)])) == [12]
    assert consumer.sought == []


async def test_r13_records_of_a_partition_no_longer_assigned_are_dropped() -> None:
    consumer = Consumer()
    continuity = guard(consumer, {TOPIC: 0})
    stale = Event(TOPIC, 0)
    assert await continuity.admit([stale]) == []
    assert stale.message.acked


async def test_a_gap_the_broker_shows_empty_is_accepted() -> None:
    """Transaction markers take offsets and are never delivered."""
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 5}, empty=frozenset({6}))
    assert offsets(await continuity.admit([Event(TOPIC, o) for o in (5, 7, 8)])) == [5, 7, 8]
    assert consumer.sought == []


async def test_r13_a_gap_holding_records_is_never_accepted() -> None:
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 5}, empty=frozenset({6}))
    assert offsets(await continuity.admit([Event(TOPIC, 5), Event(TOPIC, 8)])) == [5]
    assert consumer.sought == [(TOPIC, 6)]  # 7 holds a record: back to 6, not past it
    assert offsets(await continuity.admit([Event(TOPIC, o) for o in (7, 8)])) == [7, 8]


def counting_guard(
    consumer: Consumer, committed: dict[TP, int], empty: frozenset[int] = frozenset()
) -> tuple[Continuity, list[tuple[int, int]]]:
    """A guard whose reads of the broker (gap checks) are recorded as (first, end)."""
    reads: list[tuple[int, int]] = []

    async def starts(tps: set[TP]) -> dict[TP, int]:
        return {tp: committed[tp] for tp in tps}

    async def gap_is_empty(tp: TP, first: int, end: int) -> bool:
        reads.append((first, end))
        return all(o in empty for o in range(first, end))

    return Continuity(starts, gap_is_empty, lambda: consumer), reads


async def test_r13_records_fetched_before_a_seek_back_are_dropped_unread_and_unsought() -> None:
    """A fetch can bring several rounds' records ahead of a partition's first ones: after the
    one gap read that sends it back, the rest are dropped as they come, without reading the
    broker about each (a read under a lock each) nor seeking again (each seek would throw away
    what the last one fetched)."""
    consumer = Consumer(TOPIC)
    continuity, reads = counting_guard(consumer, {TOPIC: 0})
    assert await continuity.admit([Event(TOPIC, 6)]) == []
    stale = [Event(TOPIC, o) for o in (7, 8)]
    assert await continuity.admit(stale) == []
    assert await continuity.admit([Event(TOPIC, 9)]) == []
    assert reads == [(0, 6)]
    assert consumer.sought == [(TOPIC, 0)]
    assert all(e.message.acked for e in stale)  # dropped: never committed by them
    again = [Event(TOPIC, o) for o in range(10)]
    assert offsets(await continuity.admit(again)) == list(range(10))
    assert await continuity.admit([Event(TOPIC, 12)]) == []  # a new skip is looked at again
    assert reads == [(0, 6), (10, 12)]
    assert consumer.sought == [(TOPIC, 0), (TOPIC, 10)]


def test_r13_faust_hands_the_guard_every_record_it_fetched() -> None:
    """Faust's fetch loop drops a record below its partition's read offset, which it sets
    from the records it hands over, stale ones included: after a seek back, it dropped what
    the seek brought. With the guard installed, its read offsets drop nothing and still
    answer the lag metric."""
    from faust.transport.consumer import Consumer as BaseConsumer
    from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

    install_continuity()
    wrapper = BaseConsumer._reset_state
    install_continuity()
    assert BaseConsumer._reset_state is wrapper  # idempotent: one wrapper, not two
    consumer: Any = FaustConsumer.__new__(FaustConsumer)
    consumer._read_offset = defaultdict(lambda: None, {TOPIC: 4})
    consumer.can_resume_flow = consumer.suspend_flow = asyncio.Event()
    consumer.not_waiting_next_records = asyncio.Event()
    consumer._reset_state()
    read_offset = consumer._read_offset
    assert isinstance(read_offset, ReadOffsets)
    read_offset[TOPIC] = 9  # Faust's loop, after handing over offset 9 of a stale fetch
    assert read_offset[TOPIC] is None  # ... its filter then lets offset 0 through
    assert read_offset.get(TOPIC) == 9  # the lag metric's reading
    consumer._reset_state()
    assert consumer._read_offset is read_offset


async def test_a_seek_back_that_lands_past_transaction_markers_is_accepted() -> None:
    """The first record after a seek back comes before the one that caused it: it is judged
    afresh (offsets 0-2 are markers, 3 the first record), not taken for a stale one."""
    consumer = Consumer(TOPIC)
    continuity, reads = counting_guard(consumer, {TOPIC: 0}, empty=frozenset({0, 1, 2}))
    assert await continuity.admit([Event(TOPIC, 6)]) == []
    assert offsets(await continuity.admit([Event(TOPIC, o) for o in (3, 4, 5, 6)])) == [3, 4, 5, 6]
    assert reads == [(0, 6), (0, 3)]


async def test_r13_the_stall_check_looks_afresh_at_what_comes_after_its_seek_back() -> None:
    """A seek back whose records never came (the stall check sends the partition back again):
    the next record ahead is read about again, not dropped as stale for ever."""
    consumer = Consumer(TOPIC)
    continuity, reads = counting_guard(consumer, {TOPIC: 0}, empty=frozenset(range(6)))
    assert await continuity.admit([Event(TOPIC, 7)]) == []  # 6 holds a record

    async def ends(tps: set[TP]) -> dict[TP, int]:
        return {tp: 8 for tp in tps}

    idle = {TOPIC.topic}
    await continuity.check_stalls(idle, idle, ends)
    assert await continuity.check_stalls(idle, idle, ends) == [TOPIC]
    assert offsets(await continuity.admit([Event(TOPIC, 7)])) == []
    assert reads == [(0, 7), (0, 7)]


async def test_after_a_revocation_the_next_assignment_starts_from_committed_offsets() -> None:
    consumer = Consumer(TOPIC)
    committed = {TOPIC: 3}
    continuity = guard(consumer, committed)
    assert offsets(await continuity.admit([Event(TOPIC, 3), Event(TOPIC, 4)])) == [3, 4]
    continuity.forget()
    committed[TOPIC] = 9  # another worker had the partition meanwhile
    assert offsets(await continuity.admit([Event(TOPIC, 5), Event(TOPIC, 9)])) == [9]


async def test_r13_the_assignment_is_read_once_per_rebalance_and_followed_across_one() -> None:
    """Faust builds its assignment afresh on every call: it is read again only after a
    rebalance, and what the rebalance assigned or revoked is then what counts."""
    other = TP("invoice-paid", 5)
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 0, other: 0})
    assert offsets(await continuity.admit([Event(TOPIC, 0)])) == [0]
    assert offsets(await continuity.admit([Event(TOPIC, 1)])) == [1]
    assert consumer.reads == 1
    consumer.assigned = {TOPIC, other}
    continuity.reassigned()
    assert offsets(await continuity.admit([Event(other, 0), Event(TOPIC, 2)])) == [0, 2]
    consumer.assigned = {other}
    continuity.forget()
    assert await continuity.admit([Event(TOPIC, 3)]) == []
    assert consumer.reads == 3


def test_r13_the_commit_point_is_one_past_the_last_record_applied() -> None:
    class FaustConsumer:
        def __init__(self) -> None:
            self._acked: dict[TP, list[int]] = defaultdict(list)
            self._acked_index: dict[TP, set[int]] = defaultdict(set)
            self._gap: dict[TP, object] = {TOPIC: "offsets Faust saw jump over"}

    consumer = FaustConsumer()
    assert _commit_point(consumer, TOPIC) is None
    assert TOPIC not in consumer._gap  # never taken as done
    consumer._acked[TOPIC] = [12, 10, 11, 14]  # 13: a transaction marker
    assert _commit_point(consumer, TOPIC) == 15
    assert consumer._acked[TOPIC] == []


async def test_r13_a_skipped_last_record_is_sought_back_by_the_stall_check() -> None:
    """Nothing after it arrives to show the gap: the check sees records left and no progress."""
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 1})

    async def ends(tps: set[TP]) -> dict[TP, int]:
        return {tp: 2 for tp in tps}  # offset 1 is the partition's last record

    idle = {TOPIC.topic}  # its agent ran no round since the last check
    assert await continuity.check_stalls(idle, idle, ends) == []  # first look: wait
    assert consumer.sought == []
    assert await continuity.check_stalls(idle, idle, ends) == [TOPIC]  # no progress since
    assert consumer.sought == [(TOPIC, 1)]
    assert offsets(await continuity.admit([Event(TOPIC, 1)])) == [1]
    assert await continuity.check_stalls(idle, idle, ends) == []  # caught up


async def test_a_busy_agents_partition_waits_longer_before_it_is_sought_back() -> None:
    """Behind a backlog a partition may wait its turn: only a long wait counts as a stall."""
    consumer = Consumer(TOPIC)
    continuity = guard(consumer, {TOPIC: 1})

    async def ends(tps: set[TP]) -> dict[TP, int]:
        return {tp: 2 for tp in tps}

    busy: set[str] = set()
    for _ in range(STALLED_CHECKS):
        assert await continuity.check_stalls({TOPIC.topic}, busy, ends) == []
    assert await continuity.check_stalls({TOPIC.topic}, busy, ends) == [TOPIC]


async def test_a_partition_making_progress_or_of_another_topic_is_left_alone() -> None:
    other = TP("client-signed", 0)
    consumer = Consumer(TOPIC, other)
    continuity = guard(consumer, {TOPIC: 0, other: 0})

    async def ends(tps: set[TP]) -> dict[TP, int]:
        return {tp: 10 for tp in tps}

    idle = {TOPIC.topic}
    await continuity.check_stalls(idle, idle, ends)
    await continuity.admit([Event(TOPIC, 0)])
    assert await continuity.check_stalls(idle, idle, ends) == []
    assert consumer.sought == []
