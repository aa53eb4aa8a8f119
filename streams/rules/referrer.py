"""The referrer step (key referrer_id): caps (R8), and the reward leaves (R7, R9, R10, R13).

One writer per referrer: grants are decided one at a time in the order they arrive, so two
leads that become due together can never both pass a cap that only one fits under.
"""

from __future__ import annotations

from streams.contracts.records import (
    DecisionStatus,
    ReferralDecision,
    RejectionReason,
    record_builder,
)
from streams.rules.model import Emit, GrantRequested, GrantSettled, ReferrerState, Route, Send

# Bound once: `DecisionStatus.GRANTED` goes through EnumType.__getattr__ on every read (3.11).
_GRANTED, _REJECTED = DecisionStatus.GRANTED, DecisionStatus.REJECTED
_CAP_REACHED = RejectionReason.REFERRER_CAP_REACHED
_TO_LEAD = Route.LEAD
_new_decision = record_builder(ReferralDecision)  # one per grant: no frozen dataclass __init__


def referrer_step(
    state: ReferrerState | None, request: GrantRequested
) -> tuple[ReferrerState, list[Emit]]:
    """Grant the reward unless it would pass a cap of the lead's terms."""
    reward = request.reward
    referrer = state if state is not None else ReferrerState(referrer_id=reward.referrer_id)
    if reward.lead_id in referrer.granted or reward.lead_id in referrer.refused:
        return referrer, []  # a redelivered request: decided once, never twice
    fits = (
        referrer.granted_count + 1 <= request.max_rewards
        and referrer.granted_cents + reward.amount_cents <= request.max_total_cents
    )
    decision = _new_decision(
        lead_id=reward.lead_id,
        referrer_id=reward.referrer_id,
        status=_GRANTED if fits else _REJECTED,
        reason=None if fits else _CAP_REACHED,
        decided_at=reward.granted_at,
        terms_version=reward.terms_version,
        cause_event_id=None,  # the hold's timer decides
    )
    settled = Send(_TO_LEAD, reward.lead_id, GrantSettled(reward.lead_id, fits, decision))
    if not fits:
        referrer = referrer._replace(refused=referrer.refused | {reward.lead_id})
        return referrer, [decision, settled]
    referrer = referrer._replace(
        granted_count=referrer.granted_count + 1,
        granted_cents=referrer.granted_cents + reward.amount_cents,
        granted=referrer.granted | {reward.lead_id},
    )
    return referrer, [reward, decision, settled]
