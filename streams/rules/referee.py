"""The referee step (key referee identity): the referee's first lead is its earliest (R2).

"Earliest" is business time: the claim with the smallest (occurred_at, lead_id), whatever order
claims arrive in. A claim earlier than the current first takes its place, and the lead it
displaces is told so, unless that lead is granted (a reward is never taken back): then the
claimant is told it is not first. The first lead tells this step when it is due its reward
(`FirstGranted`); a displacement that crosses that message is settled by the displaced lead,
which then rejects the claimant itself.
"""

from __future__ import annotations

from streams.rules.model import (
    Displaced,
    Emit,
    FirstGranted,
    RefereeChecked,
    RefereeClaim,
    RefereeMessage,
    RefereeState,
    Route,
    Send,
)

_TO_LEAD = Route.LEAD  # bound once: EnumType.__getattr__ is slow on 3.11


def referee_step(
    state: RefereeState | None, message: RefereeMessage
) -> tuple[RefereeState, list[Emit]]:
    """Keep the earliest claim; answer the claimant, and displace the lead it overtakes."""
    if type(message) is FirstGranted:
        if state is not None and state.granted:
            return state, []  # a redelivery; or a second grant that crossed the first (kept)
        granted = RefereeState(
            message.identity, message.lead_id, message.occurred_at, message.event_id, True
        )
        return granted, []
    if type(message) is not RefereeClaim:
        raise TypeError(f"not a referee message: {type(message).__name__}")
    lead_id = message.lead_id
    claim = RefereeState(message.identity, lead_id, message.occurred_at, message.event_id)
    if state is None:
        return claim, [Send(_TO_LEAD, lead_id, RefereeChecked(lead_id, True))]
    if state.first_lead_id == lead_id:  # a redelivered claim gets the same answer
        return state, [Send(_TO_LEAD, lead_id, RefereeChecked(lead_id, True))]
    if state.granted or state.first() <= claim.first():
        return state, [Send(_TO_LEAD, lead_id, RefereeChecked(lead_id, False))]
    displaced = Displaced(state.first_lead_id, state.identity, lead_id, message.event_id)
    return claim, [
        Send(_TO_LEAD, state.first_lead_id, displaced),
        Send(_TO_LEAD, lead_id, RefereeChecked(lead_id, True)),
    ]
