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
    GrantRequested,
    LeadMessage,
    LeadState,
    Message,
    Output,
    ReferrerState,
    Route,
    Send,
    ShardMessage,
)
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
    # that sees the event earlier decides otherwise.
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
            result.outputs.extend(e for e in emits if not isinstance(e, Send))
            for emit in emits:
                if isinstance(emit, Send) and isinstance(emit.message, GrantRequested):
                    reward = emit.message.reward
                    granted_at[reward.lead_id] = reward.granted_at
        result.clocks[partition] = shard.clock
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
