"""`referral-rewards audit`: what the rules imply, against what was emitted.

Differences are classified where a cause can be named. Two classes are benign: a duplicate
record, an identical copy of a record that is also expected (an at-least-once redelivery;
billing dedupes on reward_id); and a late event after a grant, any difference about a lead
that an event reached, with a business time before the grant, after the live timer had fired
(R6: a fired timer is not undone, so the live outcome is the rules' outcome; a recomputation
that saw the event in time decides otherwise). Every other difference (missing, extra,
changed: even when classified as a terms change or an unknown lead) needs a person, and makes
the audit fail.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from streams.contracts import ReferralDecision, RewardGranted
from streams.contracts.records import Record, to_avro
from streams.rules.model import Output

LATE_EVENT = "late event after a grant"
BENIGN = frozenset({"duplicate record", LATE_EVENT})


@dataclass(frozen=True)
class Difference:
    kind: str  # missing, extra, different
    topic: str
    key: str
    cause: str  # duplicate record, late event after a grant, terms change, unknown lead,
    # or unexplained
    lead_id: str = ""
    status: str | None = None  # a decision's
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (expected, actual)

    @property
    def benign(self) -> bool:
        return self.cause in BENIGN

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "topic": self.topic,
            "key": self.key,
            "cause": self.cause,
            "lead_id": self.lead_id,
            "status": self.status,
            "fields": {k: {"expected": e, "actual": a} for k, (e, a) in self.fields.items()},
        }


@dataclass
class AuditReport:
    matching: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if not d.benign]

    @property
    def ok(self) -> bool:
        return not self.unexplained

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "matching": dict(self.matching),
            "differences": [d.as_json() for d in self.differences],
            "unexplained": len(self.unexplained),
        }


def _plain(record: Record) -> dict[str, Any]:
    plain: dict[str, Any] = to_avro(record)
    return plain


def _reward_key(record: RewardGranted) -> str:
    return record.reward_id


def _decision_key(record: ReferralDecision) -> str:
    return json.dumps(_plain(record), sort_keys=True)


def compare(
    expected: list[Output],
    actual: dict[str, list[Record]],
    known_leads: set[str],
    late_after_grant: Collection[str] = (),
) -> AuditReport:
    """Compare the recomputed outputs with the records found on the output topics; every
    difference about a lead in `late_after_grant` has that cause."""
    report = AuditReport()
    _compare_rewards(
        [r for r in expected if isinstance(r, RewardGranted)],
        [r for r in actual.get("reward-granted", []) if isinstance(r, RewardGranted)],
        known_leads,
        report,
    )
    _compare_decisions(
        [d for d in expected if isinstance(d, ReferralDecision)],
        [d for d in actual.get("referral-decisions", []) if isinstance(d, ReferralDecision)],
        known_leads,
        report,
    )
    late = set(late_after_grant)
    report.differences = [
        replace(d, cause=LATE_EVENT) if d.lead_id in late and _late_explains(d) else d
        for d in report.differences
    ]
    return report


def _late_explains(difference: Difference) -> bool:
    """What a late event after a grant can cause: the live grant kept where a recomputation
    refused or changed it. Never a grant missing from the output topics."""
    if difference.benign:
        return False
    if difference.topic == "reward-granted":
        return difference.kind in ("extra", "different")
    return difference.kind == "extra" or difference.status != "GRANTED"


def _compare_rewards(
    expected: list[RewardGranted],
    actual: list[RewardGranted],
    known_leads: set[str],
    report: AuditReport,
) -> None:
    topic = "reward-granted"
    wanted = {_reward_key(r): r for r in expected}
    found: dict[str, list[RewardGranted]] = defaultdict(list)
    for record in actual:
        found[_reward_key(record)].append(record)
    for key, record in wanted.items():
        lead = record.lead_id
        copies = found.pop(key, [])
        if not copies:
            report.differences.append(Difference("missing", topic, key, "unexplained", lead))
            continue
        matched = False
        for copy in copies:
            if copy == record and not matched:
                matched = True
                report.matching[topic] += 1
            elif copy == record:
                report.differences.append(Difference("extra", topic, key, "duplicate record", lead))
            else:
                diff = _field_diff(_plain(record), _plain(copy))
                cause = "terms change" if "terms_version" in diff else "unexplained"
                report.differences.append(
                    Difference("different", topic, key, cause, lead, fields=diff)
                )
        if not matched:
            report.differences.append(Difference("missing", topic, key, "unexplained", lead))
    for key, copies in found.items():
        for copy in copies:
            cause = "unexplained" if copy.lead_id in known_leads else "unknown lead"
            report.differences.append(Difference("extra", topic, key, cause, copy.lead_id))


def _compare_decisions(
    expected: list[ReferralDecision],
    actual: list[ReferralDecision],
    known_leads: set[str],
    report: AuditReport,
) -> None:
    topic = "referral-decisions"
    wanted = Counter(_decision_key(d) for d in expected)
    found = Counter(_decision_key(d) for d in actual)
    by_key = {_decision_key(d): d for d in [*expected, *actual]}
    for key in wanted.keys() | found.keys():
        want, have = wanted[key], found[key]
        report.matching[topic] += min(want, have)
        decision = by_key[key]
        status = decision.status.value
        label = f"{decision.lead_id} {status}"
        if have > want:
            if want:
                cause = "duplicate record"
            elif decision.lead_id not in known_leads:
                cause = "unknown lead"
            else:
                cause = "unexplained"
            for _ in range(have - want):
                report.differences.append(
                    Difference("extra", topic, label, cause, decision.lead_id, status)
                )
        for _ in range(want - have):
            report.differences.append(
                Difference("missing", topic, label, "unexplained", decision.lead_id, status)
            )


def _field_diff(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {
        name: (expected.get(name), actual.get(name))
        for name in sorted(expected.keys() | actual.keys())
        if expected.get(name) != actual.get(name)
    }
