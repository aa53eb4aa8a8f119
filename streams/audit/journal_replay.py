"""Replay the journals through the same steps, partition by partition, as the live worker did.

The lead journal's partitions each get their own shard and clock, exactly as live; the
referrer journal's messages go through the referrer step. Messages a step sends to other steps
are not followed: the journals already hold them, in the order they were applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.audit.sources import Journals
from streams.contracts import ReferralDecision, RewardGranted
from streams.rules import Programme, referrer_step
from streams.rules.model import (
    ClockTick,
    Displaced,
    Emit,
    FirstGranted,
    GrantRequested,
    LeadMessage,
    LeadState,
    Message,
    Output,
    RefereeChecked,
    RefereeClaim,
    RefereeState,
    ReferrerState,
    Route,
    Send,
    ShardMessage,
)
from streams.rules.referee import referee_step
from streams.rules.shard import LeadShard, business_time


@dataclass
class JournalReplay:
    outputs: list[Output] = field(default_factory=list)
    leads: dict[str, LeadState] = field(default_factory=dict)
    referrers: dict[str, ReferrerState] = field(default_factory=dict)
    # lead id -> the journal messages about it, in the order they were applied
    lead_messages: dict[str, list[tuple[int, int, Message]]] = field(default_factory=dict)
    clocks: dict[int, int | None] = field(default_factory=dict)
    failures: int = 0
    # Leads that an event reached after their grant was requested, though its business time
    # came before the grant: the live timer had fired and is not undone (R6), a recomputation
    # that sees the event earlier decides otherwise. Also both leads of R2's exception: a lead
    # dated earlier than a referee's first lead that reached it once that lead was granted
    # (or due): the granted one keeps its place and the earlier one is rejected, where a
    # recomputation in business time keeps the earlier one and rejects the granted one.
    late_after_grant: set[str] = field(default_factory=set)


def replay_journals(journals: Journals, programme: Programme) -> JournalReplay:
    result = JournalReplay()
    granted_at: dict[str, int] = {}  # lead id -> granted_at of the grant it asked for
    for partition, messages in sorted(journals.partitions.get(Route.LEAD, {}).items()):
        shard = LeadShard(programme, result.leads)
        for offset, message in messages:
            if not isinstance(message, ShardMessage):
                result.failures += 1
                continue
            if not isinstance(message, ClockTick):
                story = result.lead_messages.setdefault(message.lead_id, [])
                story.append((partition, offset, message))
                grant = granted_at.get(message.lead_id)
                if grant is not None and _new_fact_before(result.leads, message, grant):
                    result.late_after_grant.add(message.lead_id)
            try:
                emits = shard.handle(message)
            except Exception:  # the live worker dead-lettered it too
                result.failures += 1
                continue
            if type(message) is Displaced and _claimant_refused(emits):
                result.late_after_grant.update((message.lead_id, message.by_lead_id))
            result.outputs.extend(e for e in emits if not isinstance(e, Send))
            for emit in emits:
                if isinstance(emit, Send) and isinstance(emit.message, GrantRequested):
                    reward = emit.message.reward
                    granted_at[reward.lead_id] = reward.granted_at
        result.clocks[partition] = shard.clock
    result.late_after_grant |= _earlier_after_grant(journals)
    for _, messages in sorted(journals.partitions.get(Route.REFERRER, {}).items()):
        for _, message in messages:
            if not isinstance(message, GrantRequested):
                result.failures += 1
                continue
            key = message.reward.referrer_id
            result.referrers[key], emits = referrer_step(result.referrers.get(key), message)
            result.outputs.extend(
                e for e in emits if isinstance(e, RewardGranted | ReferralDecision)
            )
    return result


def _earlier_after_grant(journals: Journals) -> set[str]:
    """The leads of every claim dated before its referee's first lead that reached the referee
    step once that lead was granted: both the granted lead and the claimant (R2's exception)."""
    leads: set[str] = set()
    for _, messages in sorted(journals.partitions.get(Route.REFEREE, {}).items()):
        states: dict[str, RefereeState] = {}
        for _, message in messages:
            if not isinstance(message, RefereeClaim | FirstGranted):
                continue
            state = states.get(message.identity)
            if (
                type(message) is RefereeClaim
                and state is not None
                and state.granted
                and message.event_id  # claims of workers before business-time order: no date
                and state.first_lead_id != message.lead_id
                and (message.occurred_at, message.lead_id) < state.first()
            ):
                leads.update((state.first_lead_id, message.lead_id))
            states[message.identity], _ = referee_step(state, message)
    return leads


def _claimant_refused(emits: list[Emit]) -> bool:
    """Whether a displaced lead answered by keeping its place (granted or due)."""
    return any(
        isinstance(emit, Send) and type(emit.message) is RefereeChecked and not emit.message.first
        for emit in emits
    )


def _new_fact_before(leads: dict[str, LeadState], message: LeadMessage, moment: int) -> bool:
    """Whether `message` is a fact the lead has not recorded (not a redelivery), whose
    business time is at or before `moment`."""
    at = business_time(message)
    event_id = getattr(message, "event_id", None)
    if at is None or event_id is None or at > moment:
        return False
    lead = leads.get(message.lead_id)
    if lead is None:
        return True
    facts = (lead.submission, lead.signature, lead.invoice, lead.refusal)
    recorded = any(fact is not None and fact.event_id == event_id for fact in facts)
    return not recorded and event_id not in lead.duplicates
