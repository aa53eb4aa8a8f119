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
    LeadState,
    Message,
    Output,
    ReferrerState,
    Route,
    Send,
    ShardMessage,
)
from streams.rules.shard import LeadShard


@dataclass
class JournalReplay:
    outputs: list[Output] = field(default_factory=list)
    leads: dict[str, LeadState] = field(default_factory=dict)
    referrers: dict[str, ReferrerState] = field(default_factory=dict)
    # lead id -> the journal messages about it, in the order they were applied
    lead_messages: dict[str, list[tuple[int, int, Message]]] = field(default_factory=dict)
    clocks: dict[int, int | None] = field(default_factory=dict)
    failures: int = 0


def replay_journals(journals: Journals, programme: Programme) -> JournalReplay:
    result = JournalReplay()
    for partition, messages in sorted(journals.partitions.get(Route.LEAD, {}).items()):
        shard = LeadShard(programme, result.leads)
        for offset, message in messages:
            if not isinstance(message, ShardMessage):
                result.failures += 1
                continue
            if not isinstance(message, ClockTick):
                story = result.lead_messages.setdefault(message.lead_id, [])
                story.append((partition, offset, message))
            try:
                emits = shard.handle(message)
            except Exception:  # the live worker dead-lettered it too
                result.failures += 1
                continue
            result.outputs.extend(e for e in emits if not isinstance(e, Send))
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
