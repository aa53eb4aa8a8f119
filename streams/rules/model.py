"""State and messages of the core, split by the key each piece lives under.

| state          | key                  | why there                                              |
| -------------- | -------------------- | ------------------------------------------------------ |
| LeadState      | lead_id              | lead-submitted, client-signed, referral-refused are    |
|                |                      | keyed by lead; the lead's story and its timers (hold,  |
|                |                      | programme end) live with it                            |
| AccountState   | account_id           | invoice-paid is keyed by account; maps the account to  |
|                |                      | its lead and keeps a first invoice paid before the     |
|                |                      | signature is known (R6)                                |
| RefereeState   | referee identity     | the referee's earliest lead (R2, business time) needs  |
|                |                      | one writer per identity                                |
| ReferrerState  | referrer_id          | caps (R8): one writer per referrer, so two leads that  |
|                |                      | become due together are decided one after the other    |
|                |                      | and can never both pass a cap only one fits under      |

Steps talk through messages sent to a key (`Send`); in one process the engine delivers them
in order, live they travel through repartition topics. Every state value is small, immutable,
versioned (`streams.rules.snapshot`) and serialisable with `streams.plain`. They are named
tuples rather than frozen dataclasses because the core copies them on every step and
`_replace` is several times cheaper than `dataclasses.replace` (and, for the states copied
most, cheaper still with `_copying`); messages are dispatched on their type, never compared
with each other.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple, TypeVar

from streams.contracts.records import (
    ClientSigned,
    InvoicePaid,
    LeadSubmitted,
    ReferralDecision,
    ReferralRefused,
    RewardGranted,
    RewardKind,
)

_T = TypeVar("_T", bound=tuple[Any, ...])


_KEPT = object()  # "not given": a field `_replace` leaves as it is


def _copying(cls: type[_T]) -> type[_T]:
    """Give a named tuple a `_replace` without the generic machinery of the stock one (a
    bound `map` of `dict.pop` over every field, then `_make`): a third of the cost, same result.

    The method is compiled for the class's fields, as `collections.namedtuple` compiles its
    `__new__`: keyword-only parameters defaulting to "kept", so a call builds no dict.
    """
    fields: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
    parameters = ", ".join(f"{name}=_KEPT" for name in fields)
    values = ", ".join(f"self[{i}] if {name} is _KEPT else {name}" for i, name in enumerate(fields))
    source = (
        f"def _replace(self, /, *, {parameters}, **unknown):\n"
        f"    if unknown:\n"
        f"        raise ValueError(f'{cls.__name__} has no field {{next(iter(unknown))!r}}')\n"
        f"    return _new(_cls, ({values},))\n"
    )
    namespace: dict[str, Any] = {"_KEPT": _KEPT, "_new": tuple.__new__, "_cls": cls}
    exec(source, namespace)  # the source is built from the class's own field names
    cls._replace = namespace["_replace"]  # type: ignore[attr-defined]
    return cls


class LeadStatus(enum.StrEnum):
    PENDING = "PENDING"  # facts arrived before the submission itself
    CHECKING = "CHECKING"  # submitted; waiting for the referee check (R2)
    ACCEPTED = "ACCEPTED"
    QUALIFIED = "QUALIFIED"
    EARNED = "EARNED"  # first invoice paid; the hold runs
    DUE = "DUE"  # hold over: the grant is with the referrer's caps (R8)
    GRANTED = "GRANTED"
    REJECTED = "REJECTED"


CLOSED = frozenset({LeadStatus.DUE, LeadStatus.GRANTED, LeadStatus.REJECTED})


@_copying
class Submission(NamedTuple):
    """What the lead's story needs of its lead-submitted event; no e-mail but the voucher's."""

    event_id: str
    occurred_at: int
    referrer_id: str
    terms_version: str | None
    reward_kind: RewardKind
    referrer_account_id: str | None
    voucher_email: str | None  # R9 delivery only; cleared when the lead is rejected (R14)
    same_organization: bool  # R3, judged at submission
    referee: str | None = None  # the referee identity it claimed (R2); None in older states


class Signature(NamedTuple):
    event_id: str
    occurred_at: int
    account_id: str
    commitment_months: int


class FirstInvoice(NamedTuple):
    event_id: str
    occurred_at: int
    invoice_id: str
    account_id: str


class Refusal(NamedTuple):
    event_id: str
    occurred_at: int


@_copying
class LeadState(NamedTuple):
    lead_id: str
    status: LeadStatus = LeadStatus.PENDING
    submission: Submission | None = None
    signature: Signature | None = None
    invoice: FirstInvoice | None = None
    refusal: Refusal | None = None
    due_at: int | None = None
    # Event ids of later submissions rejected as duplicate_lead, so that their redelivery is
    # recognised (R13); the recorded facts' own ids do that for every other event.
    duplicates: frozenset[str] = frozenset()


@_copying
class AccountState(NamedTuple):
    account_id: str
    lead_id: str | None = None
    first_invoice: FirstInvoice | None = None


class RefereeState(NamedTuple):
    """The referee's first lead: the earliest claim in business time (R2), and whether that
    lead is granted (then it keeps its place: a reward is never taken back)."""

    identity: str
    first_lead_id: str
    first_at: int = 0
    first_event_id: str = ""
    granted: bool = False

    def first(self) -> tuple[int, str]:
        """What orders claims: business time, then lead id (no tie depends on arrival)."""
        return self.first_at, self.first_lead_id


@_copying
class ReferrerState(NamedTuple):
    referrer_id: str
    granted_count: int = 0
    granted_cents: int = 0
    granted: frozenset[str] = frozenset()  # lead ids: a redelivered request is not counted twice
    refused: frozenset[str] = frozenset()  # lead ids rejected at the cap


# -- messages between steps ----------------------------------------------------------------


class RefereeClaim(NamedTuple):
    """Lead -> referee identity: this lead, submitted at `occurred_at` by `event_id`, claims
    the referee (R2). Claims written before business-time order carry 0 and ""."""

    identity: str
    lead_id: str
    occurred_at: int = 0
    event_id: str = ""


class RefereeChecked(NamedTuple):
    """Referee identity (or the granted first lead) -> lead: whether it is the referee's
    first lead. `first=False` to an open lead rejects it (it lost its place to a grant)."""

    lead_id: str
    first: bool


class Displaced(NamedTuple):
    """Referee identity -> lead: an earlier lead for the referee arrived (R2); this lead is no
    longer first unless it is granted, and then the claimant is rejected instead."""

    lead_id: str
    identity: str
    by_lead_id: str
    by_event_id: str


class FirstGranted(NamedTuple):
    """Lead -> referee identity: this first lead is due its reward; it keeps its place."""

    identity: str
    lead_id: str
    occurred_at: int
    event_id: str


class AccountOpened(NamedTuple):
    """Lead -> account: the account signed for this lead (from client-signed)."""

    account_id: str
    lead_id: str


class FirstInvoicePaid(NamedTuple):
    """Account -> lead: the account's first invoice is paid (R6)."""

    lead_id: str
    account_id: str
    invoice_id: str
    paid_at: int
    event_id: str


class GrantRequested(NamedTuple):
    """Lead -> referrer: the hold is over; emit `reward` unless a cap of the lead's terms
    forbids it (R8). The lead composes the reward, the referrer only decides."""

    reward: RewardGranted
    max_rewards: int
    max_total_cents: int


class GrantSettled(NamedTuple):
    """Referrer -> lead: the grant's outcome, so the lead's state tells its story; with the
    referrer's decision, so the lead's history does too (journals before it carry none)."""

    lead_id: str
    granted: bool
    decision: ReferralDecision | None = None


class ClockTick(NamedTuple):
    """An explicit clock record: the lead shard's clock moves forward to `at` (RULES.md, Time).

    Written into every partition of the lead journal by the live worker while it is caught up,
    and by operators or tests through the clock topic; never read from a wall clock here.
    """

    at: int


class TimerFired(NamedTuple):
    """The lead shard's clock reached `at`, a time the lead asked to be woken at."""

    lead_id: str
    at: int


LeadMessage = (
    LeadSubmitted
    | ClientSigned
    | ReferralRefused
    | RefereeChecked
    | Displaced
    | FirstInvoicePaid
    | GrantSettled
    | TimerFired
)
AccountMessage = InvoicePaid | AccountOpened
RefereeMessage = RefereeClaim | FirstGranted
ReferrerMessage = GrantRequested
ShardMessage = LeadMessage | ClockTick  # what a lead shard's journal carries
Message = ShardMessage | AccountMessage | RefereeMessage | ReferrerMessage


class Route(enum.StrEnum):
    """Which state a message is for; each is partitioned by its own key."""

    LEAD = "lead"
    ACCOUNT = "account"
    REFEREE = "referee"
    REFERRER = "referrer"


class Send(NamedTuple):
    route: Route
    key: str
    message: Message


Output = RewardGranted | ReferralDecision
Emit = Output | Send
