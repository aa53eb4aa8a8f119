"""The fault harness's verifier: what the workers wrote, read read_committed, against the
project's own replays of the same log (Kafka's exactly-once system tests do the same).

Losses are looked for hop by hop, so that a difference can be told from a loss:

1. every input record the ingest step routes reached its journal (ingest dropped nothing);
2. every message a step sent, recomputed from what it applied (its journal; for the account
   step, its journal and billing's invoices, which it reads itself), is in the journal of the
   step it was sent to (no hop lost a message);
3. every output the journals imply is on the output topics (no reward or decision lost).

With no loss, what still differs from the replay of the inputs (one clock, the Kafka
timestamp order) comes from the order records arrived in live: reported apart, as
`decided_otherwise`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.app.journal import encode_message
from streams.app.settings import Topics
from streams.audit.compare import Difference, compare
from streams.audit.journal_replay import replay_journals
from streams.audit.sources import Journals, read_inputs, read_journals
from streams.contracts import (
    AvroCodec,
    ClockAdvanced,
    InputEvent,
    LeadSubmitted,
    ReferralDecision,
    RewardGranted,
)
from streams.contracts.records import (
    DeadLetter,
    DecisionStatus,
    Record,
    RejectionReason,
    to_avro,
)
from streams.kafka.reader import read_topics
from streams.rules import (
    Engine,
    Programme,
    account_step,
    referee_step,
    referrer_step,
    route_of,
)
from streams.rules.model import Emit, LeadState, Route, Send, ShardMessage
from streams.rules.shard import LeadShard

Origin = tuple[str, int, int]  # (topic, partition, offset) of an input record


@dataclass
class Verdict:
    """Every count the harness prints; `ok` says whether billing's promise held."""

    rewards_expected: int = 0
    rewards_exactly_once: int = 0
    rewards_missing: list[str] = field(default_factory=list)  # lead ids
    rewards_unexpected: list[str] = field(default_factory=list)
    rewards_changed: list[str] = field(default_factory=list)
    reward_records: int = 0
    reward_duplicates: int = 0  # raw records beyond the first per reward_id
    reward_duplicates_not_identical: int = 0
    decision_records: int = 0
    decision_duplicates: int = 0  # raw records identical to one already read
    leads_granted_and_rejected: list[str] = field(default_factory=list)
    decisions_missing: int = 0
    inputs_not_applied: list[str] = field(default_factory=list)  # hop 1
    messages_lost: list[str] = field(default_factory=list)  # hop 2
    outputs_lost: list[str] = field(default_factory=list)  # hop 3
    decided_otherwise: list[str] = field(default_factory=list)  # live order, no loss
    unexplained: list[str] = field(default_factory=list)
    benign: Counter[str] = field(default_factory=Counter)
    records_in: int = 0
    records_decoded: int = 0
    hostile_sent: int = 0
    dead_letter_records: int = 0
    dead_letter_duplicates: int = 0
    hostile_not_dead_lettered: list[str] = field(default_factory=list)
    good_dead_lettered: list[str] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        return bool(self.inputs_not_applied or self.messages_lost or self.outputs_lost)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing extra, every duplicate identical, every bad record
        dead-lettered. Differences of live arrival order alone (`decided_otherwise`) do not
        fail it; `strict_ok` says whether there were none."""
        return not (
            self.lost
            or self.reward_duplicates_not_identical
            or self.leads_granted_and_rejected
            or self.unexplained
            or self.hostile_not_dead_lettered
            or self.good_dead_lettered
            or self.records_in != self.records_decoded + self.hostile_sent
        )

    @property
    def strict_ok(self) -> bool:
        return self.ok and not self.decided_otherwise

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["benign"] = dict(self.benign)
        out["ok"] = self.ok
        out["strict_ok"] = self.strict_ok
        return out


def _describe(difference: Difference) -> str:
    status = f" {difference.status}" if difference.status else ""
    return f"{difference.kind} {difference.topic} {difference.lead_id}{status} ({difference.cause})"


def _routed(entries: list[InputEvent | ClockAdvanced], route: Route) -> list[InputEvent]:
    """The input events that go to `route`'s step (by `route_of`, as live)."""
    out = []
    for entry in entries:
        if isinstance(entry, ClockAdvanced):
            continue
        send = route_of(entry)
        if send is not None and send.route is route:
            out.append(entry)
    return out


def _inputs_not_applied(entries: list[InputEvent | ClockAdvanced], journals: Journals) -> list[str]:
    """Input events (by event id) that ingest routes and that never reached the lead journal.
    Invoices are the account step's own input: one it lost shows in hop 2 (its first invoice
    forwarded to the lead) and as a missing reward."""
    seen = {
        message.event_id
        for messages in journals.partitions.get(Route.LEAD, {}).values()
        for _, message in messages
        if isinstance(message, InputEvent)
    }
    return [
        f"{entry.topic} {entry.event_id}"
        for entry in _routed(entries, Route.LEAD)
        if entry.event_id not in seen
    ]


def _messages_lost(
    journals: Journals, programme: Programme, entries: list[InputEvent | ClockAdvanced]
) -> list[str]:
    """Messages between steps that the journals (and the invoices) imply and the target
    journal lacks."""
    present = {
        route: {encode_message(m) for ms in parts.values() for _, m in ms}
        for route, parts in journals.partitions.items()
    }
    sent: list[Send] = []
    leads: dict[str, LeadState] = {}
    for _, messages in sorted(journals.partitions.get(Route.LEAD, {}).items()):
        shard = LeadShard(programme, leads)
        for _, message in messages:
            if isinstance(message, ShardMessage):
                sent.extend(e for e in shard.handle(message) if isinstance(e, Send))
    steps: dict[Route, Callable[[Any, Any], tuple[Any, list[Emit]]]] = {
        Route.ACCOUNT: account_step,
        Route.REFEREE: referee_step,
        Route.REFERRER: referrer_step,
    }
    for route, step in steps.items():
        applied: list[Any] = [
            m for _, ms in sorted(journals.partitions.get(route, {}).items()) for _, m in ms
        ]
        if route is Route.ACCOUNT:
            # The invoices it read itself; what it forwards does not depend on how they and
            # its journal interleaved (streams.app.topology), so they may follow the journal.
            # One forwarded through the journal comes twice: the step answers a redelivery
            # with nothing (R6), as live.
            applied += _routed(entries, Route.ACCOUNT)
        states: dict[str, Any] = {}
        for message in applied:
            key = _state_key(message)
            states[key], emits = step(states.get(key), message)
            sent.extend(e for e in emits if isinstance(e, Send))
    return sorted(
        {
            f"{s.route.value} {s.key} {type(s.message).__name__}"
            for s in sent
            if encode_message(s.message) not in present.get(s.route, set())
        }
    )


def _state_key(message: Any) -> str:
    """The key a keyed step's state lives under (as the journal record's key)."""
    for name in ("account_id", "identity"):
        value = getattr(message, name, None)
        if isinstance(value, str):
            return value
    reward = getattr(message, "reward", None)
    if reward is not None:
        return str(reward.referrer_id)
    raise TypeError(f"no key for {type(message).__name__}")


def _origin_text(origin: Origin) -> str:
    return f"{origin[0]}[{origin[1]}]@{origin[2]}"


async def verify(
    bootstrap: str,
    topics: Topics,
    app_id: str,
    programme: Programme,
    hostile: set[Origin],
) -> Verdict:
    """Recompute the outputs from the inputs and hold the output topics to them."""
    verdict = Verdict(hostile_sent=len(hostile))
    log = await read_inputs(bootstrap, topics, quiet=True)
    verdict.records_decoded = len(log.entries)
    expected = Engine(programme).run(log.entries)
    known = {e.lead_id for e in log.entries if isinstance(e, LeadSubmitted)}
    journals = await read_journals(bootstrap, app_id, quiet=True)
    replayed = replay_journals(journals, programme)
    verdict.inputs_not_applied = _inputs_not_applied(log.entries, journals)
    verdict.messages_lost = _messages_lost(journals, programme, log.entries)

    codec = AvroCodec()
    names = {
        topics.reward_granted: "reward-granted",
        topics.decisions: "referral-decisions",
        topics.dead_letters: "referral-dead-letters",
    }
    found: dict[str, list[Record]] = defaultdict(list)
    async for raw in read_topics(bootstrap, [*names, *topics.inputs]):
        if raw.topic in topics.inputs:
            verdict.records_in += 1
            continue
        found[names[raw.topic]].append(codec.decode_record(names[raw.topic], raw.value or b""))

    rewards = [r for r in found["reward-granted"] if isinstance(r, RewardGranted)]
    decisions = [d for d in found["referral-decisions"] if isinstance(d, ReferralDecision)]
    _check_rewards(verdict, [r for r in expected if isinstance(r, RewardGranted)], rewards)
    _check_decisions(verdict, decisions, rewards)

    emitted: dict[str, list[Record]] = {
        "reward-granted": [*rewards],
        "referral-decisions": [*decisions],
    }
    # Hop 3: the journals' own outputs, all on the topics (a duplicate there is benign).
    journal_report = compare(replayed.outputs, emitted, set(replayed.lead_messages))
    verdict.outputs_lost = [_describe(d) for d in journal_report.differences if d.kind == "missing"]
    report = compare(expected, emitted, known, replayed.late_after_grant)
    for difference in report.differences:
        if difference.benign:
            verdict.benign[difference.cause] += 1
            continue
        if difference.topic == "referral-decisions" and difference.kind == "missing":
            verdict.decisions_missing += 1
        # Without a loss the journals explain the live outputs: the live arrival order did.
        target = verdict.unexplained if verdict.lost else verdict.decided_otherwise
        target.append(_describe(difference))

    letters = [d for d in found["referral-dead-letters"] if isinstance(d, DeadLetter)]
    verdict.dead_letter_records = len(letters)
    origins = Counter((d.source_topic, d.source_partition, d.source_offset) for d in letters)
    verdict.dead_letter_duplicates = sum(n - 1 for n in origins.values())
    verdict.hostile_not_dead_lettered = sorted(_origin_text(o) for o in hostile - set(origins))
    verdict.good_dead_lettered = sorted(_origin_text(o) for o in set(origins) - hostile)
    return verdict


def _check_rewards(
    verdict: Verdict, expected: list[RewardGranted], found: list[RewardGranted]
) -> None:
    verdict.rewards_expected = len(expected)
    verdict.reward_records = len(found)
    by_id: dict[str, list[RewardGranted]] = defaultdict(list)
    for reward in found:
        by_id[reward.reward_id].append(reward)
    wanted = {r.reward_id: r for r in expected}
    for reward_id, copies in by_id.items():
        verdict.reward_duplicates += len(copies) - 1
        if any(copy != copies[0] for copy in copies):
            verdict.reward_duplicates_not_identical += 1
        if reward_id not in wanted:
            verdict.rewards_unexpected.append(copies[0].lead_id)
        elif copies[0] != wanted[reward_id]:
            verdict.rewards_changed.append(copies[0].lead_id)
        elif len(copies) == 1:
            verdict.rewards_exactly_once += 1
    verdict.rewards_missing = sorted(r.lead_id for i, r in wanted.items() if i not in by_id)


def _check_decisions(
    verdict: Verdict, decisions: list[ReferralDecision], rewards: list[RewardGranted]
) -> None:
    verdict.decision_records = len(decisions)
    seen = Counter(json.dumps(to_avro(d), sort_keys=True) for d in decisions)
    verdict.decision_duplicates = sum(n - 1 for n in seen.values())
    granted = {r.lead_id for r in rewards}
    granted |= {d.lead_id for d in decisions if d.status is DecisionStatus.GRANTED}
    # A duplicate_lead rejection is about a second submission, not about the lead it copies.
    rejected = {
        d.lead_id
        for d in decisions
        if d.status is DecisionStatus.REJECTED and d.reason is not RejectionReason.DUPLICATE_LEAD
    }
    verdict.leads_granted_and_rejected = sorted(granted & rejected)
