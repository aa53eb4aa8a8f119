"""The lead step (key lead_id): R1-R7, R9-R12 and the lead's timers.

`lead_step(state, message, programme, now)` is pure: `now` is the lead shard's clock, data like
everything else. Facts (signature, first invoice, refusal) are recorded whatever order they
arrive in, then `_settle` plays them in business-time order from the lead's status, so a payment
before the signature or a signature before the lead gives the outcome business-time order gives.
A closed lead (due, granted, rejected) never changes.

Every message of every lead runs through here, so the module is written for the interpreter:
handlers are looked up by message type, and enum members are bound to module names once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from streams.contracts.records import (
    ClientSigned,
    DecisionStatus,
    LeadSubmitted,
    ReferralDecision,
    ReferralRefused,
    ReferrerKind,
    RejectionReason,
    RewardGranted,
    RewardKind,
    record_builder,
)
from streams.rules.identity import referee_identity, same_organization
from streams.rules.model import (
    CLOSED,
    AccountOpened,
    Displaced,
    Emit,
    FirstGranted,
    FirstInvoice,
    FirstInvoicePaid,
    GrantRequested,
    GrantSettled,
    LeadMessage,
    LeadState,
    LeadStatus,
    RefereeChecked,
    RefereeClaim,
    Refusal,
    Route,
    Send,
    Signature,
    Submission,
    TimerFired,
)
from streams.rules.terms import Programme, TermsVersion

# Fixed forever: billing dedupes on reward ids derived under it (R13).
REWARD_NAMESPACE = uuid.UUID("4f0c1d56-6a57-5b1e-9d39-2a3c1f7e8b10")
_NAMESPACE_BYTES = REWARD_NAMESPACE.bytes

EXCLUDED_KINDS = frozenset({ReferrerKind.RESELLER, ReferrerKind.DISTRIBUTOR, ReferrerKind.PARTNER})

# At one instant a timer fires before any event (RULES.md, Time); among events, Ringover's
# refusal comes first, then the signature, then the payment.
_TIMER, _REFUSAL, _SIGNATURE, _INVOICE = range(4)

# On Python 3.11 reading `LeadStatus.X` goes through EnumType.__getattr__ (several times the
# cost of a module global); these members are read on every message.
_CHECKING = LeadStatus.CHECKING
_ACCEPTED = LeadStatus.ACCEPTED
_QUALIFIED = LeadStatus.QUALIFIED
_EARNED = LeadStatus.EARNED
_DUE = LeadStatus.DUE
_GRANTED = LeadStatus.GRANTED
_REJECTED = LeadStatus.REJECTED
_GIFT_VOUCHER = RewardKind.GIFT_VOUCHER
_TO_LEAD, _TO_REFEREE = Route.LEAD, Route.REFEREE
_TO_ACCOUNT, _TO_REFERRER = Route.ACCOUNT, Route.REFERRER
_OPEN = frozenset({_CHECKING, _ACCEPTED, _QUALIFIED, _EARNED})
_DECIDED_ACCEPTED, _DECIDED_QUALIFIED = DecisionStatus.ACCEPTED, DecisionStatus.QUALIFIED
_DECIDED_EARNED, _DECIDED_REJECTED = DecisionStatus.EARNED, DecisionStatus.REJECTED
_REFUSED_BY_RINGOVER = RejectionReason.REFUSED_BY_RINGOVER
_PROGRAM_ENDED = RejectionReason.PROGRAM_ENDED
_COMMITMENT_TOO_SHORT = RejectionReason.COMMITMENT_TOO_SHORT
_INVOICE_REDUCTION = RewardKind.INVOICE_REDUCTION

# The outputs, one or two per event, built without the frozen dataclass __init__.
_new_decision = record_builder(ReferralDecision)
_new_reward = record_builder(RewardGranted)

Step = tuple[LeadState, list[Emit]]


def lead_step(
    state: LeadState | None, message: LeadMessage, programme: Programme, now: int
) -> Step:
    """Apply one message to a lead; returns its new state and what it emits. A message that
    changes nothing gets back the very state it was given, when it was given one."""
    handler = _HANDLERS.get(type(message))
    if handler is None:
        raise TypeError(f"not a lead message: {type(message).__name__}")
    lead = state if state is not None else LeadState(message.lead_id)
    return handler(lead, message, programme, now)


def next_timer(lead: LeadState, programme: Programme) -> int | None:
    """When the lead wants its shard to wake it: its hold's end, or the programme's end."""
    status = lead.status
    if status is _EARNED:
        return lead.due_at
    if status is _ACCEPTED or status is _QUALIFIED:
        return programme.ends_at
    return None


# -- submission: R12, R11, R1, R2, R3 ------------------------------------------------------


def _submitted(lead: LeadState, event: LeadSubmitted, programme: Programme, now: int) -> Step:
    event_id = event.event_id
    first = lead.submission
    if first is not None:
        if event_id == first.event_id or event_id in lead.duplicates:
            return lead, []  # a redelivery (R13)
        # R12: not transferable, the first submission stands
        terms = programme.version_at(event.occurred_at)
        duplicate = _new_decision(
            lead_id=lead.lead_id,
            referrer_id=event.referrer.referrer_id,
            status=DecisionStatus.REJECTED,
            reason=RejectionReason.DUPLICATE_LEAD,
            decided_at=event.occurred_at,
            terms_version=terms.version if terms else None,
            cause_event_id=event_id,
        )
        return lead._replace(duplicates=lead.duplicates | {event_id}), [duplicate]

    terms = programme.version_at(event.occurred_at)
    referrer = event.referrer
    if referrer.account_id is None or referrer.reward_preference is _GIFT_VOUCHER:
        kind, account, voucher = _GIFT_VOUCHER, None, referrer.email  # R9
    else:
        kind, account, voucher = _INVOICE_REDUCTION, referrer.account_id, None
    identity = referee_identity(event.referee, programme)
    submission = Submission(
        event_id,
        event.occurred_at,
        referrer.referrer_id,
        terms.version if terms else None,
        kind,
        account,
        voucher,
        same_organization(referrer, event.referee, programme),
        identity,
    )
    lead = lead._replace(submission=submission, status=_CHECKING)
    # Every submission but a duplicate claims its referee, whatever becomes of it (R2).
    claim = Send(
        _TO_REFEREE,
        identity,
        RefereeClaim(identity, lead.lead_id, event.occurred_at, event_id),
    )

    reason: RejectionReason | None = None
    if terms is None or event.occurred_at < programme.starts_at:
        reason = RejectionReason.PROGRAM_NOT_STARTED
    elif programme.ends_at is not None and event.occurred_at >= programme.ends_at:
        reason = RejectionReason.PROGRAM_ENDED
    elif referrer.kind in EXCLUDED_KINDS:
        reason = RejectionReason.REFERRER_EXCLUDED
    elif referrer.terms_accepted_version is None:
        reason = RejectionReason.TERMS_NOT_ACCEPTED
    elif event.referee.known_to_ringover:
        reason = RejectionReason.REFEREE_ALREADY_KNOWN
    if reason is not None:
        lead, decision = _reject(lead, reason, event.occurred_at, event_id)
        return lead, [claim, decision]
    # The signature's account must hear of its lead even while the lead is checked.
    return lead, [claim]


def _referee_checked(
    lead: LeadState, message: RefereeChecked, programme: Programme, now: int
) -> Step:
    sub = lead.submission
    status = lead.status
    if sub is None:
        return lead, []
    if status is not _CHECKING:
        if message.first or status not in _OPEN:
            return lead, []  # a redelivered answer
        # R2: it displaced a lead that turned out to be granted: it loses its place instead.
        lead, decision = _reject(
            lead, RejectionReason.REFEREE_ALREADY_KNOWN, sub.occurred_at, sub.event_id
        )
        return lead, [decision]
    if not message.first:
        lead, decision = _reject(
            lead, RejectionReason.REFEREE_ALREADY_KNOWN, sub.occurred_at, sub.event_id
        )
        return lead, [decision]
    if sub.same_organization:
        lead, decision = _reject(
            lead, RejectionReason.SAME_ORGANIZATION, sub.occurred_at, sub.event_id
        )
        return lead, [decision]
    accepted = _decision(lead.lead_id, sub, _DECIDED_ACCEPTED, sub.occurred_at, sub.event_id)
    return _settle(lead._replace(status=_ACCEPTED), programme, now, [accepted])


def _displaced(lead: LeadState, message: Displaced, programme: Programme, now: int) -> Step:
    """R2: an earlier lead for the referee arrived. An open lead loses its place; a closed one
    keeps its outcome; a granted (or due) one keeps its place and rejects the claimant."""
    sub = lead.submission
    status = lead.status
    if sub is None or status is _REJECTED:
        return lead, []
    if status is _DUE or status is _GRANTED:
        claimant = message.by_lead_id
        kept = FirstGranted(message.identity, lead.lead_id, sub.occurred_at, sub.event_id)
        return lead, [
            Send(_TO_LEAD, claimant, RefereeChecked(claimant, False)),
            Send(_TO_REFEREE, message.identity, kept),
        ]
    lead, decision = _reject(
        lead, RejectionReason.REFEREE_ALREADY_KNOWN, sub.occurred_at, message.by_event_id
    )
    return lead, [decision]


# -- facts: recorded once, whatever order they arrive in -----------------------------------
#
# A fact of a kind already recorded is a redelivery (R13) or a second one (the first stands);
# a closed lead takes no more facts. Either way the fact changes nothing and emits nothing.


def _signed(lead: LeadState, event: ClientSigned, programme: Programme, now: int) -> Step:
    if lead.signature is not None or lead.status in CLOSED:
        return lead, []
    signature = Signature(
        event.event_id, event.occurred_at, event.account_id, event.commitment_months
    )
    opened = Send(_TO_ACCOUNT, event.account_id, AccountOpened(event.account_id, lead.lead_id))
    return _settle(lead._replace(signature=signature), programme, now, [opened])


def _refused(lead: LeadState, event: ReferralRefused, programme: Programme, now: int) -> Step:
    if lead.refusal is not None or lead.status in CLOSED:
        return lead, []
    refusal = Refusal(event.event_id, event.occurred_at)
    return _settle(lead._replace(refusal=refusal), programme, now, [])


def _invoice_paid(
    lead: LeadState, message: FirstInvoicePaid, programme: Programme, now: int
) -> Step:
    if lead.invoice is not None or lead.status in CLOSED:
        return lead, []
    invoice = FirstInvoice(
        message.event_id, message.paid_at, message.invoice_id, message.account_id
    )
    return _settle(lead._replace(invoice=invoice), programme, now, [])


def _timer_fired(lead: LeadState, message: TimerFired, programme: Programme, _: int) -> Step:
    return _settle(lead, programme, message.at, [])


def _grant_settled(lead: LeadState, message: GrantSettled, _: Programme, __: int) -> Step:
    if lead.status is not _DUE:
        return lead, []
    status = _GRANTED if message.granted else _REJECTED
    return _forget_voucher(lead._replace(status=status)), []


_HANDLERS: dict[type[Any], Callable[[LeadState, Any, Programme, int], Step]] = {
    LeadSubmitted: _submitted,
    RefereeChecked: _referee_checked,
    Displaced: _displaced,
    ClientSigned: _signed,
    ReferralRefused: _refused,
    FirstInvoicePaid: _invoice_paid,
    TimerFired: _timer_fired,
    GrantSettled: _grant_settled,
}


# -- settling: the recorded facts and due timers in business-time order ---------------------


def _settle(lead: LeadState, programme: Programme, now: int, emits: list[Emit]) -> Step:
    """Play the recorded facts and due timers in business-time order, as far as they go."""
    while (step := _next_to_play(lead, programme, now)) is not None:
        at, what = step
        if what == _REFUSAL:
            sub, refusal = lead.submission, lead.refusal
            if sub is None or refusal is None:
                raise _broken(lead, "submission or refusal")
            lead, decision = _reject(
                lead, _REFUSED_BY_RINGOVER, max(at, sub.occurred_at), refusal.event_id
            )
            emits.append(decision)
        elif what == _SIGNATURE:
            lead, decision = _sign(lead, programme)
            emits.append(decision)
        elif what == _INVOICE:
            lead, earned = _earn(lead, programme)
            emits.append(earned)
        elif lead.status is _EARNED:
            lead, request = _due(lead, programme)
            emits.append(request)
            emits.extend(_keep_first(lead))
        else:  # the programme ended before the first invoice was paid (R11)
            lead, decision = _reject(lead, _PROGRAM_ENDED, at, None)
            emits.append(decision)
    return lead, emits


def _next_to_play(lead: LeadState, programme: Programme, now: int) -> tuple[int, int] | None:
    """(time, kind) of the earliest fact or timer an open lead can play next, if any."""
    status = lead.status
    refusal = lead.refusal
    if status is _EARNED:
        due_at = lead.due_at
        if due_at is None:
            raise _broken(lead, "due time")
        # A refusal counts until the hold is over; the timer wins a tie (RULES.md, Time).
        if refusal is not None and refusal.occurred_at < due_at:
            return refusal.occurred_at, _REFUSAL
        return (due_at, _TIMER) if due_at <= now else None
    fact: Signature | FirstInvoice | None
    if status is _ACCEPTED:
        fact = lead.signature
        kind = _SIGNATURE
    elif status is _QUALIFIED:
        fact = lead.invoice
        kind = _INVOICE
    else:
        return None  # checking, pending or closed
    # The earliest of at most three candidates, without building a list of them.
    best = (fact.occurred_at, kind) if fact is not None else None
    if refusal is not None:
        refused = (refusal.occurred_at, _REFUSAL)
        if best is None or refused < best:
            best = refused
    ends_at = programme.ends_at
    if ends_at is not None and ends_at <= now:
        ended = (ends_at, _TIMER)
        if best is None or ended < best:
            best = ended
    return best


def _sign(lead: LeadState, programme: Programme) -> tuple[LeadState, ReferralDecision]:
    """R5: a long enough commitment qualifies the lead; a shorter one rejects it."""
    sub, signature = lead.submission, lead.signature
    if sub is None or signature is None:
        raise _broken(lead, "submission or signature")
    at = max(sub.occurred_at, signature.occurred_at)
    if signature.commitment_months >= _terms(lead, sub, programme).min_commitment_months:
        qualified = _decision(lead.lead_id, sub, _DECIDED_QUALIFIED, at, signature.event_id)
        return lead._replace(status=_QUALIFIED), qualified
    return _reject(lead, _COMMITMENT_TOO_SHORT, at, signature.event_id)


def _earn(lead: LeadState, programme: Programme) -> tuple[LeadState, ReferralDecision]:
    """R6 and R10: the first invoice is paid; the hold runs until the lead is due."""
    sub, signature, invoice = lead.submission, lead.signature, lead.invoice
    if sub is None or signature is None or invoice is None:
        raise _broken(lead, "submission, signature or invoice")
    last_needed = max(sub.occurred_at, signature.occurred_at, invoice.occurred_at)
    due_at = max(invoice.occurred_at + _terms(lead, sub, programme).hold_ms, last_needed)
    earned = _decision(lead.lead_id, sub, _DECIDED_EARNED, last_needed, invoice.event_id)
    return lead._replace(status=_EARNED, due_at=due_at), earned


def _due(lead: LeadState, programme: Programme) -> tuple[LeadState, Send]:
    """The hold is over: ask the referrer's state for the grant (caps, R8)."""
    sub, signature, invoice, due_at = lead.submission, lead.signature, lead.invoice, lead.due_at
    if sub is None or signature is None or invoice is None or due_at is None:
        raise _broken(lead, "submission, signature, invoice or due time")
    terms = _terms(lead, sub, programme)
    reward = _new_reward(
        reward_id=reward_id(lead.lead_id),
        referrer_id=sub.referrer_id,
        lead_id=lead.lead_id,
        referee_account_id=invoice.account_id,
        amount_cents=terms.reward_amount_cents,  # R7
        currency=terms.currency,
        kind=sub.reward_kind,  # R9: decided at submission, with the e-mail or account below
        voucher_email=sub.voucher_email,
        referrer_account_id=sub.referrer_account_id,
        terms_version=terms.version,
        first_invoice_id=invoice.invoice_id,
        first_invoice_paid_at=invoice.occurred_at,
        granted_at=due_at,  # R10
        due_by=invoice.occurred_at + terms.payout_window_ms,
        source_event_ids=(sub.event_id, signature.event_id, invoice.event_id),
    )
    request = GrantRequested(reward, terms.max_rewards, terms.max_total_cents)
    return lead._replace(status=_DUE), Send(_TO_REFERRER, sub.referrer_id, request)


def _keep_first(lead: LeadState) -> list[Emit]:
    """R2: a lead due its reward keeps its place as its referee's first lead."""
    sub = lead.submission
    if sub is None or sub.referee is None:
        return []  # a state from before business-time R2
    kept = FirstGranted(sub.referee, lead.lead_id, sub.occurred_at, sub.event_id)
    return [Send(_TO_REFEREE, sub.referee, kept)]


def reward_id(lead_id: str) -> str:
    """UUIDv5 of the lead id alone: a lead can only ever have this one reward id (R13).

    RFC 4122 section 4.3 written out: `str(uuid.uuid5(...))` builds an int and a UUID object
    on the way and costs five times as much; tested equal to it.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + lead_id.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# -- invariants ---------------------------------------------------------------------------
#
# A lead in a given status always has the facts that status needs: a missing one is a bug in
# this module, never bad input. The checks are written inline (no helper call) because they
# run on every step, and they narrow the types for mypy.


def _broken(lead: LeadState, what: str) -> AssertionError:
    return AssertionError(
        f"lead state invariant broken: {lead.lead_id} is {lead.status} without {what}"
    )


def _terms(lead: LeadState, sub: Submission, programme: Programme) -> TermsVersion:
    """The terms the lead was submitted under (R12: they stay its terms)."""
    if sub.terms_version is None:
        raise _broken(lead, "terms version")
    return programme.version_named(sub.terms_version)


# -- decisions ----------------------------------------------------------------------------


def _decision(
    lead_id: str,
    sub: Submission,
    status: DecisionStatus,
    at: int,
    cause: str | None,
    *,
    reason: RejectionReason | None = None,
) -> ReferralDecision:
    return _new_decision(
        lead_id=lead_id,
        referrer_id=sub.referrer_id,
        status=status,
        reason=reason,
        decided_at=at,
        terms_version=sub.terms_version,
        cause_event_id=cause,
    )


def _reject(
    lead: LeadState, reason: RejectionReason, at: int, cause: str | None
) -> tuple[LeadState, ReferralDecision]:
    sub = lead.submission
    if sub is None:
        raise _broken(lead, "submission")
    decision = _decision(lead.lead_id, sub, _DECIDED_REJECTED, at, cause, reason=reason)
    return _forget_voucher(lead._replace(status=_REJECTED)), decision


def _forget_voucher(lead: LeadState) -> LeadState:
    """A closed lead no longer needs the referrer's e-mail (R14: data minimisation)."""
    sub = lead.submission
    if sub is None or sub.voucher_email is None or lead.status is _DUE:
        return lead
    return lead._replace(submission=sub._replace(voucher_email=None))
