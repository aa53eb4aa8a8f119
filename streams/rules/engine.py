"""The four steps run in one process, in log order: the audit replay and the tests drive this.

The engine owns nothing but routing: per-key state lives in plain dicts, the clock is the
latest event time it was given, and the timer heap is derived from the leads' states (it can be
rebuilt from them at any time, which is what a restarted live worker does).
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Iterable

from streams.contracts.records import (
    ClientSigned,
    InputEvent,
    InvoicePaid,
    LeadSubmitted,
    ReferralDecision,
    ReferralRefused,
    RewardGranted,
)
from streams.rules.account import account_step
from streams.rules.lead import lead_step, next_timer
from streams.rules.model import (
    AccountMessage,
    AccountState,
    Emit,
    GrantRequested,
    LeadMessage,
    LeadState,
    Output,
    RefereeClaim,
    RefereeState,
    ReferrerState,
    Route,
    Send,
    TimerFired,
)
from streams.rules.referee import referee_step
from streams.rules.referrer import referrer_step
from streams.rules.terms import Programme

_INPUT_ROUTES: dict[type, Route] = {
    LeadSubmitted: Route.LEAD,
    ClientSigned: Route.LEAD,
    ReferralRefused: Route.LEAD,
    InvoicePaid: Route.ACCOUNT,
}


def route_of(event: InputEvent) -> Send:
    """Where an input event goes: lead-keyed topics to the lead, invoices to the account."""
    route = _INPUT_ROUTES.get(type(event))
    if route is None:
        raise TypeError(f"not an input event: {type(event).__name__}")
    return Send(route, event.key, event)


class Engine:
    """Applies input events and clock advances; returns the outputs in emission order."""

    def __init__(self, programme: Programme) -> None:
        self.programme = programme
        self.leads: dict[str, LeadState] = {}
        self.accounts: dict[str, AccountState] = {}
        self.referees: dict[str, RefereeState] = {}
        self.referrers: dict[str, ReferrerState] = {}
        self.clock: int | None = None
        self.stats: Counter[str] = Counter()
        self._timers: list[tuple[int, str]] = []

    def apply(self, event: InputEvent) -> list[Output]:
        """Fire the timers due by the event's time, then apply the event (RULES.md, Time)."""
        self.stats[f"events.{event.topic}"] += 1
        outputs = self.advance_to(event.occurred_at)
        self._deliver(route_of(event), outputs)
        return outputs

    def advance_to(self, at: int) -> list[Output]:
        """Move the clock forward to `at` (never back), firing due timers in time order."""
        outputs: list[Output] = []
        while self._timers and self._timers[0][0] <= at:
            due, lead_id = heapq.heappop(self._timers)
            lead = self.leads.get(lead_id)
            if lead is None or next_timer(lead, self.programme) != due:
                continue  # superseded: the lead moved on since this timer was set
            self.clock = max(self.clock or due, due)
            self._deliver(Send(Route.LEAD, lead_id, TimerFired(lead_id, due)), outputs)
        if self.clock is None or at > self.clock:
            self.clock = at
        return outputs

    def run(self, events: Iterable[InputEvent], as_of: int | None = None) -> list[Output]:
        """Apply every event in order, then advance to `as_of` (default: the last event time)."""
        outputs: list[Output] = []
        latest: int | None = None
        for event in events:
            outputs.extend(self.apply(event))
            latest = event.occurred_at if latest is None else max(latest, event.occurred_at)
        target = as_of if as_of is not None else latest
        if target is not None:
            outputs.extend(self.advance_to(target))
        return outputs

    def _deliver(self, first: Send, outputs: list[Output]) -> None:
        queue: deque[Send] = deque([first])
        now = self.clock if self.clock is not None else 0
        while queue:
            send = queue.popleft()
            emits = self._step(send, now)
            for emit in emits:
                if isinstance(emit, Send):
                    queue.append(emit)
                else:
                    outputs.append(emit)
                    self._count(emit)

    def _step(self, send: Send, now: int) -> list[Emit]:
        key, message = send.key, send.message
        emits: list[Emit]
        if send.route is Route.LEAD and isinstance(message, LeadMessage):
            before = self.leads.get(key)
            lead, emits = lead_step(before, message, self.programme, now)
            self.leads[key] = lead
            timer = next_timer(lead, self.programme)
            previous = next_timer(before, self.programme) if before is not None else None
            if timer is not None and timer != previous:
                heapq.heappush(self._timers, (timer, key))
        elif send.route is Route.ACCOUNT and isinstance(message, AccountMessage):
            self.accounts[key], emits = account_step(self.accounts.get(key), message)
        elif send.route is Route.REFEREE and isinstance(message, RefereeClaim):
            self.referees[key], emits = referee_step(self.referees.get(key), message)
        elif send.route is Route.REFERRER and isinstance(message, GrantRequested):
            self.referrers[key], emits = referrer_step(self.referrers.get(key), message)
        else:
            raise TypeError(f"{type(message).__name__} cannot go to the {send.route} step")
        return emits

    def _count(self, output: Output) -> None:
        if isinstance(output, RewardGranted):
            self.stats["rewards"] += 1
            if output.granted_at > output.due_by:
                self.stats["rewards.overdue"] += 1
        elif isinstance(output, ReferralDecision):
            self.stats[f"decisions.{output.status.value}"] += 1
            if output.reason is not None:
                self.stats[f"rejected.{output.reason.value}"] += 1
