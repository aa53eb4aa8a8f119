"""The four steps run in one process, in log order: the audit replay and the tests drive this.

The engine owns nothing but routing: per-key state lives in plain dicts, and every lead is in
one shard with one clock (the live worker has a shard per partition). Messages between steps
are delivered in the order they were sent, each to quiescence before the next input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streams.contracts.records import (
    ClientSigned,
    ClockAdvanced,
    InputEvent,
    InvoicePaid,
    LeadSubmitted,
    ReferralRefused,
)
from streams.rules.account import account_step, triggers
from streams.rules.model import (
    AccountMessage,
    AccountState,
    Emit,
    GrantRequested,
    LeadMessage,
    LeadState,
    Output,
    RefereeMessage,
    RefereeState,
    ReferrerState,
    Route,
    Send,
)
from streams.rules.referee import referee_step
from streams.rules.referrer import referrer_step
from streams.rules.shard import LeadShard
from streams.rules.terms import Programme

_INPUT_ROUTES: dict[type, Route] = {
    LeadSubmitted: Route.LEAD,
    ClientSigned: Route.LEAD,
    ReferralRefused: Route.LEAD,
    InvoicePaid: Route.ACCOUNT,
}


def route_of(event: InputEvent) -> Send | None:
    """Where an input event goes: lead-keyed topics to the lead, invoices to the account;
    None for an event no step would act on (a later invoice, R6), which need not travel."""
    route = _INPUT_ROUTES.get(type(event))
    if route is None:
        raise TypeError(f"not an input event: {type(event).__name__}")
    if type(event) is InvoicePaid and not triggers(event):
        return None
    return Send(route, event.key, event)


class Engine:
    """Applies input events and clock advances; returns the outputs in emission order."""

    def __init__(self, programme: Programme) -> None:
        self.programme = programme
        self.leads: dict[str, LeadState] = {}
        self.accounts: dict[str, AccountState] = {}
        self.referees: dict[str, RefereeState] = {}
        self.referrers: dict[str, ReferrerState] = {}
        self.shard = LeadShard(programme, self.leads)

    @property
    def clock(self) -> int | None:
        return self.shard.clock

    def apply(self, event: InputEvent) -> list[Output]:
        """Fire the timers due by the event's time, then apply the event (RULES.md, Time)."""
        outputs: list[Output] = []
        self._apply(event, outputs)
        return outputs

    def advance_to(self, at: int) -> list[Output]:
        """Move the clock forward to `at` (never back), firing due timers in time order."""
        outputs: list[Output] = []
        self._deliver(self.shard.advance_to(at), outputs)
        return outputs

    def outputs(
        self, log: Iterable[InputEvent | ClockAdvanced], as_of: int | None = None
    ) -> Iterator[Output]:
        """Apply a log of events and clock records in order, then advance the clock to `as_of`
        (by default the latest time seen); yields the outputs in emission order."""
        latest: int | None = None
        outputs: list[Output] = []  # reused: one list for the whole log, emptied per entry
        for entry in log:
            if type(entry) is ClockAdvanced:
                moment = entry.at
                self._deliver(self.shard.advance_to(moment), outputs)
            else:
                self._apply(entry, outputs)  # type: ignore[arg-type]
                moment = entry.occurred_at  # type: ignore[union-attr]
            if outputs:
                yield from outputs
                outputs.clear()
            if latest is None or moment > latest:
                latest = moment
        target = as_of if as_of is not None else latest
        if target is not None:
            yield from self.advance_to(target)

    def run(
        self, log: Iterable[InputEvent | ClockAdvanced], as_of: int | None = None
    ) -> list[Output]:
        """All the outputs of `outputs(log, as_of)` as a list."""
        return list(self.outputs(log, as_of))

    def _apply(self, event: InputEvent, outputs: list[Output]) -> None:
        step = _INPUT_STEPS.get(type(event))
        if step is None:
            raise TypeError(f"not an input event: {type(event).__name__}")
        fired = self.shard.advance_to(event.occurred_at)
        if fired:
            self._deliver(fired, outputs)
        # Straight to its step at the clock just set, without a Send of its own.
        self._deliver(step(self, event.key, event), outputs)

    def _deliver(self, emits: list[Emit], outputs: list[Output]) -> None:
        # Messages in the order they were sent, each step's to quiescence (module docstring):
        # a list iterated while it grows is a FIFO queue. Steps hand over lists of their own.
        for emit in emits:
            if isinstance(emit, Send):
                emits.extend(_STEPS[emit.route](self, emit.key, emit.message))
            else:
                outputs.append(emit)

    def _lead(self, _: str, message: LeadMessage) -> list[Emit]:
        return self.shard.handle(message)

    def _lead_input(self, _: str, event: LeadMessage) -> list[Emit]:
        return self.shard.apply_now(event)

    def _account(self, key: str, message: AccountMessage) -> list[Emit]:
        before = self.accounts.get(key)
        after, emits = account_step(before, message)
        if after is not before and after is not None:
            self.accounts[key] = after
        return emits

    def _referee(self, key: str, message: RefereeMessage) -> list[Emit]:
        before = self.referees.get(key)
        after, emits = referee_step(before, message)
        if after is not before:
            self.referees[key] = after
        return emits

    def _referrer(self, key: str, message: GrantRequested) -> list[Emit]:
        self.referrers[key], emits = referrer_step(self.referrers.get(key), message)
        return emits


# The step of each route, as plain functions of the engine: bound methods kept on the engine
# would make it a reference cycle, left for the (paused) cyclic collector to free.
_STEPS: dict[Route, Callable[[Engine, str, Any], list[Emit]]] = {
    Route.LEAD: Engine._lead,
    Route.ACCOUNT: Engine._account,
    Route.REFEREE: Engine._referee,
    Route.REFERRER: Engine._referrer,
}
# Input events go to the step of their route (route_of), once the engine has moved the clock
# to their time: a lead's is applied at that clock without a second look at the timers.
_INPUT_STEPS: dict[type, Callable[[Engine, str, Any], list[Emit]]] = {
    kind: Engine._lead_input if route is Route.LEAD else _STEPS[route]
    for kind, route in _INPUT_ROUTES.items()
}
