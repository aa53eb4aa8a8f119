"""The lead step (key lead_id): R1-R7, R9-R12 and the lead's timers.

`lead_step(state, message, programme, now)` is pure: `now` is the lead shard's clock, data like
everything else. Facts (signature, first invoice, refusal) are recorded whatever order they
arrive in, then `_settle` plays them in business-time order from the lead's status, so a payment
before the signature or a signature before the lead gives the outcome business-time order gives.
A closed lead (due, granted, rejected) never changes.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

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
)
from streams.rules.identity import referee_identity, same_organization
from streams.rules.model import (
    CLOSED,
    OPEN,
    AccountOpened,
    Emit,
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

EXCLUDED_KINDS = frozenset({ReferrerKind.RESELLER, ReferrerKind.DISTRIBUTOR, ReferrerKind.PARTNER})

# At one instant a timer fires before any event (RULES.md, Time); among events, Ringover's
# refusal comes first, then the signature, then the payment.
_TIMER, _REFUSAL, _SIGNATURE, _INVOICE = range(4)

Step = tuple[LeadState, list[Emit]]


def lead_step(
    state: LeadState | None, message: LeadMessage, programme: Programme, now: int
) -> Step:
    """Apply one message to a lead; returns its new state and what it emits."""
    lead_id = message.lead_id
    lead = state if state is not None else LeadState(lead_id=lead_id)
    if isinstance(message, LeadSubmitted):
        return _submitted(lead, message, programme, now)
    if isinstance(message, ClientSigned):
        return _signed(lead, message, programme, now)
    if isinstance(message, ReferralRefused):
        if _ignores(lead, message.event_id, lead.refusal):
            return lead, []
        refusal = Refusal(event_id=message.event_id, occurred_at=message.occurred_at)
        lead = lead._replace(refusal=refusal, seen=lead.seen | {message.event_id})
        return _settle(lead, programme, now, [])
    if isinstance(message, FirstInvoicePaid):
        if _ignores(lead, message.event_id, lead.invoice):
            return lead, []
        invoice = FirstInvoice(
            event_id=message.event_id,
            occurred_at=message.paid_at,
            invoice_id=message.invoice_id,
            account_id=message.account_id,
        )
        lead = lead._replace(invoice=invoice, seen=lead.seen | {message.event_id})
        return _settle(lead, programme, now, [])
    if isinstance(message, RefereeChecked):
        return _referee_checked(lead, message, programme, now)
    if isinstance(message, TimerFired):
        return _settle(lead, programme, message.at, [])
    if isinstance(message, GrantSettled):
        if lead.status is not LeadStatus.DUE:
            return lead, []
        status = LeadStatus.GRANTED if message.granted else LeadStatus.REJECTED
        return _forget_voucher(lead._replace(status=status)), []
    raise TypeError(f"not a lead message: {type(message).__name__}")


def _ignores(lead: LeadState, event_id: str, recorded: object) -> bool:
    """A redelivery (R13), a second fact of a kind already recorded (the first stands), or a
    closed lead: the fact changes nothing and emits nothing."""
    return event_id in lead.seen or recorded is not None or lead.status in CLOSED


def next_timer(lead: LeadState, programme: Programme) -> int | None:
    """When the lead wants its shard to wake it: its hold's end, or the programme's end."""
    if lead.status is LeadStatus.EARNED:
        return lead.due_at
    if lead.status in (LeadStatus.ACCEPTED, LeadStatus.QUALIFIED):
        return programme.ends_at
    return None


# -- submission: R12, R11, R1, R2, R3 ------------------------------------------------------


def _submitted(lead: LeadState, event: LeadSubmitted, programme: Programme, now: int) -> Step:
    if event.event_id in lead.seen:
        return lead, []
    terms = programme.version_at(event.occurred_at)
    if lead.submission is not None:  # R12: not transferable, the first submission stands
        duplicate = ReferralDecision(
            lead_id=lead.lead_id,
            referrer_id=event.referrer.referrer_id,
            status=DecisionStatus.REJECTED,
            reason=RejectionReason.DUPLICATE_LEAD,
            decided_at=event.occurred_at,
            terms_version=terms.version if terms else None,
            cause_event_id=event.event_id,
        )
        return lead._replace(seen=lead.seen | {event.event_id}), [duplicate]

    referrer = event.referrer
    if referrer.account_id is None or referrer.reward_preference is RewardKind.GIFT_VOUCHER:
        kind, account, voucher = RewardKind.GIFT_VOUCHER, None, referrer.email  # R9
    else:
        kind, account, voucher = RewardKind.INVOICE_REDUCTION, referrer.account_id, None
    submission = Submission(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        referrer_id=referrer.referrer_id,
        terms_version=terms.version if terms else None,
        reward_kind=kind,
        referrer_account_id=account,
        voucher_email=voucher,
        same_organization=same_organization(referrer, event.referee, programme),
    )
    lead = lead._replace(
        submission=submission, status=LeadStatus.CHECKING, seen=lead.seen | {event.event_id}
    )
    # Every submission but a duplicate claims its referee, whatever becomes of it (R2).
    identity = referee_identity(event.referee, programme)
    claim = Send(Route.REFEREE, identity, RefereeClaim(identity=identity, lead_id=lead.lead_id))

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
        lead, decision = _reject(lead, reason, event.occurred_at, event.event_id)
        return lead, [claim, decision]
    # The signature's account must hear of its lead even while the lead is checked.
    return lead, [claim]


def _referee_checked(
    lead: LeadState, message: RefereeChecked, programme: Programme, now: int
) -> Step:
    if lead.status is not LeadStatus.CHECKING or lead.submission is None:
        return lead, []
    sub = lead.submission
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
    lead = lead._replace(status=LeadStatus.ACCEPTED)
    accepted = _decision(lead, DecisionStatus.ACCEPTED, sub.occurred_at, sub.event_id)
    return _settle(lead, programme, now, [accepted])


# -- facts --------------------------------------------------------------------------------


def _signed(lead: LeadState, event: ClientSigned, programme: Programme, now: int) -> Step:
    if _ignores(lead, event.event_id, lead.signature):
        return lead, []
    signature = Signature(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        account_id=event.account_id,
        commitment_months=event.commitment_months,
    )
    lead = lead._replace(signature=signature, seen=lead.seen | {event.event_id})
    opened = Send(
        Route.ACCOUNT,
        event.account_id,
        AccountOpened(account_id=event.account_id, lead_id=lead.lead_id),
    )
    return _settle(lead, programme, now, [opened])


def _settle(lead: LeadState, programme: Programme, now: int, emits: list[Emit]) -> Step:
    """Play the recorded facts and due timers in business-time order, as far as they go."""
    while lead.status in OPEN:
        sub = _need(lead.submission, "submission")
        candidates: list[tuple[int, int]] = []
        status = lead.status
        if lead.refusal is not None and (
            status is not LeadStatus.EARNED
            or (lead.due_at is not None and lead.refusal.occurred_at < lead.due_at)
        ):
            candidates.append((lead.refusal.occurred_at, _REFUSAL))
        if status is LeadStatus.ACCEPTED and lead.signature is not None:
            candidates.append((lead.signature.occurred_at, _SIGNATURE))
        if status is LeadStatus.QUALIFIED and lead.invoice is not None:
            candidates.append((lead.invoice.occurred_at, _INVOICE))
        if status is LeadStatus.EARNED and lead.due_at is not None and lead.due_at <= now:
            candidates.append((lead.due_at, _TIMER))
        ends_at = programme.ends_at
        if status is not LeadStatus.EARNED and ends_at is not None and ends_at <= now:
            candidates.append((ends_at, _TIMER))
        if not candidates:
            break
        at, what = min(candidates)
        if what == _REFUSAL:
            refusal = _need(lead.refusal, "refusal")
            lead, decision = _reject(
                lead,
                RejectionReason.REFUSED_BY_RINGOVER,
                max(at, sub.occurred_at),
                refusal.event_id,
            )
            emits.append(decision)
        elif what == _SIGNATURE:
            lead, decision = _sign(lead, programme)
            emits.append(decision)
        elif what == _INVOICE:
            lead, earned = _earn(lead, programme)
            emits.append(earned)
        elif status is LeadStatus.EARNED:
            lead, request = _due(lead, programme)
            emits.append(request)
        else:  # the programme ended before the first invoice was paid (R11)
            lead, decision = _reject(lead, RejectionReason.PROGRAM_ENDED, at, None)
            emits.append(decision)
    return lead, emits


def _sign(lead: LeadState, programme: Programme) -> tuple[LeadState, ReferralDecision]:
    """R5: a long enough commitment qualifies the lead; a shorter one rejects it."""
    sub, terms = _terms(lead, programme)
    signature = _need(lead.signature, "signature")
    at = max(sub.occurred_at, signature.occurred_at)
    if signature.commitment_months >= terms.min_commitment_months:
        lead = lead._replace(status=LeadStatus.QUALIFIED)
        return lead, _decision(lead, DecisionStatus.QUALIFIED, at, signature.event_id)
    return _reject(lead, RejectionReason.COMMITMENT_TOO_SHORT, at, signature.event_id)


def _earn(lead: LeadState, programme: Programme) -> tuple[LeadState, ReferralDecision]:
    """R6 and R10: the first invoice is paid; the hold runs until the lead is due."""
    sub, terms = _terms(lead, programme)
    signature, invoice = _need(lead.signature, "signature"), _need(lead.invoice, "invoice")
    last_needed = max(sub.occurred_at, signature.occurred_at, invoice.occurred_at)
    due_at = max(invoice.occurred_at + terms.hold_ms, last_needed)
    lead = lead._replace(status=LeadStatus.EARNED, due_at=due_at)
    return lead, _decision(lead, DecisionStatus.EARNED, last_needed, invoice.event_id)


def _due(lead: LeadState, programme: Programme) -> tuple[LeadState, Send]:
    """The hold is over: ask the referrer's state for the grant (caps, R8)."""
    sub, terms = _terms(lead, programme)
    signature, invoice = _need(lead.signature, "signature"), _need(lead.invoice, "invoice")
    due_at = _need(lead.due_at, "due time")
    reward = RewardGranted(
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
    return lead._replace(status=LeadStatus.DUE), Send(Route.REFERRER, sub.referrer_id, request)


def reward_id(lead_id: str) -> str:
    """UUIDv5 of the lead id alone: a lead can only ever have this one reward id (R13)."""
    return str(uuid.uuid5(REWARD_NAMESPACE, lead_id))


# -- invariants ---------------------------------------------------------------------------

T = TypeVar("T")


def _need(value: T | None, what: str) -> T:
    """A lead in this status always has `what`; a missing one is a bug, never bad input."""
    if value is None:
        raise AssertionError(f"lead state invariant broken: no {what}")
    return value


def _terms(lead: LeadState, programme: Programme) -> tuple[Submission, TermsVersion]:
    sub = _need(lead.submission, "submission")
    return sub, programme.version_named(_need(sub.terms_version, "terms version"))


# -- decisions ----------------------------------------------------------------------------


def _decision(
    lead: LeadState,
    status: DecisionStatus,
    at: int,
    cause: str | None,
    reason: RejectionReason | None = None,
) -> ReferralDecision:
    sub = _need(lead.submission, "submission")
    return ReferralDecision(
        lead_id=lead.lead_id,
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
    decision = _decision(lead, DecisionStatus.REJECTED, at, cause, reason)
    return _forget_voucher(lead._replace(status=LeadStatus.REJECTED)), decision


def _forget_voucher(lead: LeadState) -> LeadState:
    """A closed lead no longer needs the referrer's e-mail (R14: data minimisation)."""
    if lead.submission is None or lead.submission.voucher_email is None:
        return lead
    if lead.status is LeadStatus.DUE:
        return lead
    return lead._replace(submission=lead.submission._replace(voucher_email=None))
