"""The referrer step (key referrer_id): caps (R8) and the reward itself (R7, R9, R10, R13).

One writer per referrer: grants are decided one at a time in the order they arrive, so two
leads that become due together can never both pass a cap that only one fits under.
"""

from __future__ import annotations

import uuid

from streams.contracts.records import (
    DecisionStatus,
    ReferralDecision,
    RejectionReason,
    RewardGranted,
    RewardKind,
)
from streams.rules.model import Emit, GrantRequested, GrantSettled, ReferrerState, Route, Send

# Fixed forever: billing dedupes on reward ids derived under it (R13).
REWARD_NAMESPACE = uuid.UUID("4f0c1d56-6a57-5b1e-9d39-2a3c1f7e8b10")


def reward_id(lead_id: str) -> str:
    """UUIDv5 of the lead id alone: a lead can only ever have this one reward id."""
    return str(uuid.uuid5(REWARD_NAMESPACE, lead_id))


def referrer_step(
    state: ReferrerState | None, request: GrantRequested
) -> tuple[ReferrerState, list[Emit]]:
    """Grant the reward unless it would pass a cap of the lead's terms."""
    referrer = state if state is not None else ReferrerState(referrer_id=request.referrer_id)
    if request.lead_id in referrer.granted or request.lead_id in referrer.refused:
        return referrer, []  # a redelivered request: decided once, never twice
    fits = (
        referrer.granted_count + 1 <= request.max_rewards
        and referrer.granted_cents + request.amount_cents <= request.max_total_cents
    )
    decision = ReferralDecision(
        lead_id=request.lead_id,
        referrer_id=request.referrer_id,
        status=DecisionStatus.GRANTED if fits else DecisionStatus.REJECTED,
        reason=None if fits else RejectionReason.REFERRER_CAP_REACHED,
        decided_at=request.granted_at,
        terms_version=request.terms_version,
        cause_event_id=None,  # the hold's timer decides
    )
    settled = Send(Route.LEAD, request.lead_id, GrantSettled(request.lead_id, granted=fits))
    if not fits:
        referrer = referrer._replace(refused=referrer.refused | {request.lead_id})
        return referrer, [decision, settled]
    reward = RewardGranted(
        reward_id=reward_id(request.lead_id),
        referrer_id=request.referrer_id,
        lead_id=request.lead_id,
        referee_account_id=request.referee_account_id,
        amount_cents=request.amount_cents,
        currency=request.currency,
        kind=request.kind,
        voucher_email=request.voucher_email if request.kind is RewardKind.GIFT_VOUCHER else None,
        referrer_account_id=(
            request.referrer_account_id if request.kind is RewardKind.INVOICE_REDUCTION else None
        ),
        terms_version=request.terms_version,
        first_invoice_id=request.first_invoice_id,
        first_invoice_paid_at=request.first_invoice_paid_at,
        granted_at=request.granted_at,
        due_by=request.due_by,
        source_event_ids=request.source_event_ids,
    )
    referrer = referrer._replace(
        granted_count=referrer.granted_count + 1,
        granted_cents=referrer.granted_cents + request.amount_cents,
        granted=referrer.granted | {request.lead_id},
    )
    return referrer, [reward, decision, settled]
