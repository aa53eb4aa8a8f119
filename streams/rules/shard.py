"""A lead shard: the leads of one partition, its clock and its timers (RULES.md, Time).

Live, each partition of the lead journal is one shard with its own clock; the JSONL replay
runs every lead in one shard with one clock. The clock moves only forward, only when told:
by an event's business time or by a clock record. Before a message is applied, the timers due
at or before its time fire in time order; a timer already due when a message sets it fires
within that message's step (the lead's `_settle` sees `now`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from operator import attrgetter
from typing import Any

from streams.contracts.records import ClientSigned, LeadSubmitted, ReferralRefused
from streams.rules.lead import lead_step, next_timer
from streams.rules.model import (
    ClockTick,
    Emit,
    FirstInvoicePaid,
    LeadMessage,
    LeadState,
    ShardMessage,
    TimerFired,
)
from streams.rules.terms import Programme

_BUSINESS_TIME: dict[type[Any], Callable[[Any], int]] = {
    LeadSubmitted: attrgetter("occurred_at"),
    ClientSigned: attrgetter("occurred_at"),
    ReferralRefused: attrgetter("occurred_at"),
    FirstInvoicePaid: attrgetter("paid_at"),
    ClockTick: attrgetter("at"),
}


def business_time(message: ShardMessage) -> int | None:
    """The time a message moves the clock to, if it carries one; replies between steps
    carry no time of their own."""
    # Keyed on the exact type: this runs for every message of every lead.
    time_of = _BUSINESS_TIME.get(type(message))
    return time_of(message) if time_of is not None else None


def pending_timers(
    leads: Iterable[tuple[str, LeadState]], programme: Programme
) -> Iterator[tuple[int, str]]:
    """(due time, lead id) of every lead waiting for its shard's clock."""
    for lead_id, lead in leads:
        timer = next_timer(lead, programme)
        if timer is not None:
            yield timer, lead_id


class LeadShard:
    """Applies lead messages to the leads in `leads` (any mutable mapping: a dict, a table)."""

    def __init__(
        self,
        programme: Programme,
        leads: MutableMapping[str, LeadState],
        clock: int | None = None,
    ) -> None:
        self.programme = programme
        self.leads = leads
        self.clock = clock
        # Derived from the leads' states, never the source of truth: rebuilt after a restart.
        self._timers: list[tuple[int, str]] = []

    def rebuild_timers(self, timers: Iterable[tuple[int, str]] | None = None) -> int:
        """Reset the timer heap to `timers` (due time, lead id), by default recomputed from
        every lead in the mapping; returns how many."""
        if timers is None:
            timers = pending_timers(self.leads.items(), self.programme)
        self._timers = list(timers)
        heapq.heapify(self._timers)
        return len(self._timers)

    def handle(self, message: ShardMessage) -> list[Emit]:
        """Advance the clock to the message's time (firing due timers), then apply it."""
        if isinstance(message, ClockTick):
            return self.advance_to(message.at)
        at = business_time(message)
        if at is None:  # a reply between steps: no time of its own
            return self._apply(message, self.clock if self.clock is not None else 0)
        timers = self._timers
        if timers and timers[0][0] <= at:
            emits = self.advance_to(at)
            emits.extend(self._apply(message, self.clock if self.clock is not None else at))
            return emits
        # Nothing due (the common case): the clock moves without a walk of the timers.
        clock = self.clock
        if clock is None or at > clock:
            self.clock = clock = at
        return self._apply(message, clock)

    def apply_now(self, message: LeadMessage) -> list[Emit]:
        """Apply a message at the clock as it stands: for a caller that has just advanced the
        clock to the message's time (`advance_to`) and delivered what fired."""
        clock = self.clock
        if clock is None:
            raise ValueError("the shard's clock was never set: advance_to first")
        return self._apply(message, clock)

    def advance_to(self, at: int) -> list[Emit]:
        """Move the clock forward to `at` (never back), firing due timers in time order."""
        emits: list[Emit] = []
        timers = self._timers
        while timers and timers[0][0] <= at:
            due, lead_id = heapq.heappop(timers)
            lead = self.leads.get(lead_id)
            if lead is None or next_timer(lead, self.programme) != due:
                continue  # superseded: the lead moved on since this timer was set
            self.clock = due if self.clock is None else max(self.clock, due)
            emits.extend(self._apply(TimerFired(lead_id, due), due))
        if self.clock is None or at > self.clock:
            self.clock = at
        return emits

    def _apply(self, message: LeadMessage, now: int) -> list[Emit]:
        lead_id = message.lead_id
        before = self.leads.get(lead_id)
        lead, emits = lead_step(before, message, self.programme, now)
        if lead is not before:  # a step that changes nothing hands back the state it got
            self.leads[lead_id] = lead
            timer = next_timer(lead, self.programme)
            if timer is not None and (
                before is None or timer != next_timer(before, self.programme)
            ):
                heapq.heappush(self._timers, (timer, lead_id))
        return emits
