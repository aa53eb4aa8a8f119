"""The four steps run in one process, in log order: the audit replay and the tests drive this.

The engine owns nothing but routing: per-key state lives in plain dicts, and every lead is in
one shard with one clock (the live worker has a shard per partition). Messages between steps
are delivered in the order they were sent, each to quiescence before the next input.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator

from streams.contracts.records import (
    ClientSigned,
    ClockAdvanced,
    InputEvent,
    InvoicePaid,
    LeadSubmitted,
    ReferralDecision,
    ReferralRefused,
    RewardGranted,
)
from streams.rules.account import account_step
from streams.rules.model import (
    AccountMessage,
    AccountState,
    ClockTick,
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
        self.shard = LeadShard(programme, self.leads)
        self.stats: Counter[str] = Counter()

    @property
    def clock(self) -> int | None:
        return self.shard.clock

    def apply(self, event: InputEvent) -> list[Output]:
        """Fire the timers due by the event's time, then apply the event (RULES.md, Time)."""
        self.stats[f"events.{event.topic}"] += 1
        outputs: list[Output] = []
        self._deliver(self.shard.advance_to(event.occurred_at), outputs)
        self._deliver([route_of(event)], outputs)
        return outputs

    def advance_to(self, at: int) -> list[Output]:
        """Move the clock forward to `at` (never back), firing due timers in time order."""
        outputs: list[Output] = []
        self._deliver(self.shard.handle(ClockTick(at)), outputs)
        return outputs

    def outputs(
        self, log: Iterable[InputEvent | ClockAdvanced], as_of: int | None = None
    ) -> Iterator[Output]:
        """Apply a log of events and clock records in order, then advance the clock to `as_of`
        (by default the latest time seen); yields the outputs in emission order."""
        latest: int | None = None
        for entry in log:
            if isinstance(entry, ClockAdvanced):
                yield from self.advance_to(entry.at)
                moment = entry.at
            else:
                yield from self.apply(entry)
                moment = entry.occurred_at
            latest = moment if latest is None else max(latest, moment)
        target = as_of if as_of is not None else latest
        if target is not None:
            yield from self.advance_to(target)

    def run(
        self, log: Iterable[InputEvent | ClockAdvanced], as_of: int | None = None
    ) -> list[Output]:
        """All the outputs of `outputs(log, as_of)` as a list."""
        return list(self.outputs(log, as_of))

    def _deliver(self, emits: Iterable[Emit], outputs: list[Output]) -> None:
        queue: deque[Emit] = deque(emits)
        while queue:
            emit = queue.popleft()
            if isinstance(emit, Send):
                queue.extend(self._step(emit))
            else:
                outputs.append(emit)
                self._count(emit)

    def _step(self, send: Send) -> list[Emit]:
        key, message = send.key, send.message
        if send.route is Route.LEAD and isinstance(message, LeadMessage):
            return self.shard.handle(message)
        emits: list[Emit]
        if send.route is Route.ACCOUNT and isinstance(message, AccountMessage):
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
