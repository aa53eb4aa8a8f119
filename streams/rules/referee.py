"""The referee step (key referee identity): the first submission to arrive wins (R2)."""

from __future__ import annotations

from streams.rules.model import Emit, RefereeChecked, RefereeClaim, RefereeState, Route, Send

_TO_LEAD = Route.LEAD  # bound once: EnumType.__getattr__ is slow on 3.11


def referee_step(
    state: RefereeState | None, message: RefereeClaim
) -> tuple[RefereeState, list[Emit]]:
    """Record the first lead to claim the identity; tell the claimant whether it was first."""
    referee = state if state is not None else RefereeState(message.identity, message.lead_id)
    first = referee.first_lead_id == message.lead_id  # a redelivered claim gets the same answer
    return referee, [Send(_TO_LEAD, message.lead_id, RefereeChecked(message.lead_id, first))]
