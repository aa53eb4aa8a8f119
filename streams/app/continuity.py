"""Every record of a partition applied, in offset order, from where the group committed.

Faust (faust-streaming 0.15) can hand an agent, right after a rebalance, a partition's records
starting one past the committed offset, or records of a batch fetched before the rebalance;
its commit check then lets the offset move past the record that was never applied (its
"committed" is the next offset to read, and it tolerates a gap of one, or any gap when the
group had never committed that partition). A record skipped that way is lost for good: an
invoice that never reaches its lead, a lead never judged.

`Continuity` stands between Faust and the rules: the first record of each partition after an
assignment must be the one at the group's committed offset (the log start when there is
none), and each later one the next. A record ahead of that is applied only if the broker
shows no record between (transaction markers and compaction leave such gaps); otherwise it is
dropped and the partition sought back to the first record not applied. A record behind the
expected one (already applied, or committed before the rebalance) and a record of a
partition no longer assigned are dropped. A dropped record is never acked.

So a partition's acked offsets are exactly the records applied, in order, since the
committed offset, and `install_continuity` makes Faust commit one past the last of them,
never taking offsets it did not see as done (its "gap" merge did that), and makes its fetch
loop hand over every record it fetched (`ReadOffsets`): which ones to apply is the guard's
call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.types import TP, EventT

log = logging.getLogger("referral.worker")
StartOffsets = Callable[[set[TP]], Awaitable[dict[TP, int]]]
EndOffsets = Callable[[set[TP]], Awaitable[dict[TP, int]]]
STALLED_CHECKS = 6  # checks without progress before a busy agent's partition is sought back
GapIsEmpty = Callable[[TP, int, int], Awaitable[bool]]  # (tp, first, end): no record there


def drop(event: EventT[Any], consumer: Any) -> None:
    """Let Faust forget a record without acking it: its offset is never committed by it."""
    message = event.message
    message.acked = True  # Message.ack then records nothing in the consumer
    consumer._unacked_messages.discard(message)  # nor does a rebalance wait for it


class Continuity:
    def __init__(
        self,
        start_offsets: StartOffsets,
        gap_is_empty: GapIsEmpty,
        consumer: Callable[[], Any],
        seek: Callable[[TP, int], Awaitable[None]] | None = None,
    ) -> None:
        self.start_offsets = start_offsets
        self.gap_is_empty = gap_is_empty
        self.consumer = consumer
        # Faust's Consumer.seek touches the client from this thread while it fetches in its
        # own; the worker passes a seek that runs on the consumer's thread.
        self.seek = seek or (lambda tp, offset: self.consumer().seek(tp, offset))
        self._next: dict[TP, int] = {}
        # The consumer's assignment, read once per rebalance: Faust builds it afresh on every
        # call (a set of ~80 partitions), and a round at light load holds a record or two.
        self._assigned: set[TP] | None = None
        self._reported: set[tuple[TP, int]] = set()
        # tp -> the offset whose early arrival showed a record skipped: the records from there
        # on that the fetch before the seek still holds are dropped, without another read of
        # the broker (a gap read under a lock each: 470 in one drain whose partitions all
        # started ahead) and without another seek (each one threw away what the last fetched)
        self._sought: dict[TP, int] = {}
        # tp -> (expected offset at the last stall check, checks in a row without progress)
        self._last_check: dict[TP, tuple[int, int]] = {}

    def forget(self) -> None:
        """After a revocation: the next assignment starts again from committed offsets."""
        self._assigned = None
        self._next.clear()
        self._reported.clear()
        self._last_check.clear()
        self._sought.clear()

    def reassigned(self) -> None:
        """After an assignment: the partitions assigned are read again from the consumer."""
        self._assigned = None

    async def admit(self, events: Iterable[EventT[Any]]) -> list[EventT[Any]]:
        """The events to apply, in order; the others are dropped and, after a skip, the
        partition is sought back to the first record not applied."""
        consumer = self.consumer()
        assigned = self._assigned
        if assigned is None:
            assigned = self._assigned = set(consumer.assignment())
        batch = list(events)
        unknown = {e.message.tp for e in batch if e.message.tp not in self._next}
        if unknown:
            try:
                self._next.update(await self.start_offsets(unknown))
            except Exception as exc:
                # Their records are dropped unapplied; the next batch asks again and seeks back.
                log.warning("committed offsets unknown (%s): asking again", exc)
        admitted: list[EventT[Any]] = []
        seek: set[TP] = set()
        sought = self._sought
        for event in batch:
            tp, offset = event.message.tp, event.message.offset
            expected = self._next.get(tp)
            if tp not in assigned or expected is None or offset < expected or tp in seek:
                drop(event, consumer)
            elif offset == expected:
                admitted.append(event)
                self._next[tp] = offset + 1
                sought.pop(tp, None)
            elif offset >= sought.get(tp, offset + 1):
                drop(event, consumer)  # fetched before the seek back: the seek brings it again
            elif await self._empty(tp, expected, offset):
                admitted.append(event)
                self._next[tp] = offset + 1
                sought.pop(tp, None)
            else:
                drop(event, consumer)
                seek.add(tp)
                sought[tp] = offset
                if (tp, expected) not in self._reported:
                    self._reported.add((tp, expected))
                    log.warning(
                        "%s[%d]: offset %d came before %d was applied; seeking back to %d",
                        tp.topic,
                        tp.partition,
                        offset,
                        expected,
                        expected,
                    )
        for tp in seek:
            await self.seek(tp, self._next[tp])
        return admitted

    async def check_stalls(
        self, topics: set[str], idle: set[str], end_offsets: EndOffsets
    ) -> list[TP]:
        """Seek back the partitions of `topics` that have records left to apply and made no
        progress: a skipped last record shows no later one to give it away. A partition of an
        agent that ran no round since the last check (its topics in `idle`) is sought back at
        the second check without progress; any other after STALLED_CHECKS checks, since a busy
        agent's partitions may just be waiting their turn. Called every few seconds."""
        consumer = self.consumer()
        mine = {tp for tp in consumer.assignment() if tp.topic in topics}
        if not mine:
            self._last_check.clear()
            return []
        unknown = {tp for tp in mine if tp not in self._next}
        if unknown:
            self._next.update(await self.start_offsets(unknown))
        ends = await end_offsets(mine)
        stalled = []
        for tp in sorted(mine):
            expected = self._next.get(tp)
            if expected is None or ends.get(tp, 0) <= expected:
                self._last_check.pop(tp, None)
                continue
            seen, checks = self._last_check.get(tp, (None, 0))
            checks = checks + 1 if seen == expected else 0
            self._last_check[tp] = (expected, checks)
            if checks >= (1 if tp.topic in idle else STALLED_CHECKS):
                stalled.append(tp)
                del self._last_check[tp]
        for tp in stalled:
            expected = self._next[tp]
            self._sought.pop(tp, None)  # what comes next is looked at afresh
            log.warning(
                "%s[%d]: no record applied since %d though the log goes on; seeking back",
                tp.topic,
                tp.partition,
                expected,
            )
            await self.seek(tp, expected)
        return stalled

    async def _empty(self, tp: TP, first: int, end: int) -> bool:
        try:
            return await self.gap_is_empty(tp, first, end)
        except Exception as exc:  # unknown: seek back, which is always safe
            log.warning("could not read %s[%d] %d..%d (%s)", *tp, first, end - 1, exc)
            return False


def _commit_point(consumer: Any, tp: TP) -> int | None:
    """Faust's `Consumer._new_offset` for agents behind `Continuity`: one past the last
    offset acked, since every acked offset of the assignment was applied, in order."""
    consumer._gap.pop(tp, None)  # offsets never seen are never taken as done
    acked = consumer._acked[tp]
    if not acked:
        return None
    offset: int = max(acked) + 1
    acked.clear()
    consumer._acked_index[tp].clear()
    return offset


class ReadOffsets(dict[TP, int | None]):
    """Faust's read offsets for agents behind `Continuity`: kept (the lag metric reads them
    with `get`), never used to drop a record. Faust's fetch loop drops a record below its
    partition's read offset, and sets that offset after each record it hands over, the ones
    a fetch before a seek back still held included: so it dropped what the seek brought, and
    a partition that started ahead came back only once a seek landed after the last stale
    record (a drain a quarter slower). The guard drops what is behind and seeks back what is
    ahead; this filter had nothing left to add."""

    def __getitem__(self, tp: TP) -> None:
        return None  # Faust's loop: no record is behind, no gap to record


def install_continuity() -> None:
    """Leave every Faust consumer of this process's agents to the guard: it commits by
    `_commit_point` and hands over every record it fetched (`ReadOffsets`); idempotent."""
    from faust.transport.consumer import Consumer

    Consumer._new_offset = _commit_point  # type: ignore[assignment]
    reset = Consumer._reset_state
    if getattr(reset, "keeps_read_offsets", False):
        return

    def _reset_state(self: Any) -> None:
        reset(self)
        if not isinstance(self._read_offset, ReadOffsets):
            self._read_offset = ReadOffsets(self._read_offset)

    _reset_state.keeps_read_offsets = True  # type: ignore[attr-defined]
    Consumer._reset_state = _reset_state  # type: ignore[method-assign]
