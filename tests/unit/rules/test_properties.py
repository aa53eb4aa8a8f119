"""Properties over random event histories (hypothesis), as the rules-core issue lists them."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from streams.contracts import InputEvent, ReferralDecision, RewardGranted
from streams.contracts.records import DecisionStatus, ReferrerKind, RejectionReason
from streams.replay import replay
from streams.rules import Engine
from tests.builders import DAY, T0, lead, paid, referee, referrer, refused, signed
from tests.unit.rules.conftest import run, terms

REFERRERS = [
    referrer(referrer_id=f"ref-{i}", email=f"r{i}@org{i}.example", organization_id=f"ORG-{i}")
    for i in range(3)
]
REFEREE_EMAILS = [f"boss@co{i}.example" for i in range(5)] + ["x@gmail.com", "y@gmail.com"]


@st.composite
def lead_history(draw: st.DrawFn, lead_id: str) -> list[InputEvent]:
    """One lead's events: submission, maybe a signature, first (and later) invoices, refusal."""
    when = st.integers(min_value=0, max_value=40 * DAY).map(lambda ms: T0 + ms)
    who = draw(st.sampled_from(REFERRERS))
    kind = draw(st.sampled_from([ReferrerKind.CLIENT] * 4 + [ReferrerKind.PARTNER]))
    submitted = lead(
        lead_id,
        at=draw(when),
        referrer_=dataclasses.replace(who, kind=kind),
        referee_=referee(
            email=draw(st.sampled_from(REFEREE_EMAILS)),
            known_to_ringover=draw(st.integers(0, 9)) == 0,
        ),
    )
    events: list[InputEvent] = [submitted]
    account = f"acc-{lead_id}"
    if draw(st.integers(0, 9)) < 8:
        events.append(
            signed(
                lead_id, draw(when), account_id=account, months=draw(st.sampled_from([6, 12, 24]))
            )
        )
    if draw(st.integers(0, 9)) < 7:
        events.append(paid(account, draw(when)))
    if draw(st.booleans()):
        events.append(paid(account, draw(when), sequence=2))
    if draw(st.integers(0, 9)) < 2:
        events.append(refused(lead_id, draw(when)))
    return events


@st.composite
def history(draw: st.DrawFn) -> list[InputEvent]:
    """Several leads' events interleaved in a random arrival order."""
    count = draw(st.integers(min_value=1, max_value=8))
    events = [e for i in range(count) for e in draw(lead_history(f"lead-{i}"))]
    return draw(st.permutations(events))


COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(data=st.data())
def test_r6_any_arrival_order_of_one_leads_events_gives_the_same_outcome(
    data: st.DataObject,
) -> None:
    """(a) With every event inside the hold (no timer fires between them), the final outcome
    and the reward do not depend on the arrival order. A lead gets at most one rejecting fact
    here: once a rejection is emitted the lead is closed, so two rejecting facts arriving in
    the opposite order of their business times can only give the first-arrived reason."""
    near = st.integers(min_value=0, max_value=10 * DAY).map(lambda ms: T0 + ms)
    months = data.draw(st.sampled_from([6, 12, 24]))
    events: list[InputEvent] = [
        lead(at=data.draw(near), event_id="L"),
        signed(at=data.draw(near), months=months, event_id="S"),
        paid(at=data.draw(near), event_id="P"),
    ]
    if months >= 12 and data.draw(st.booleans()):
        events.append(refused(at=data.draw(near), event_id="R"))
    arrival = data.draw(st.permutations(events))
    business = sorted(events, key=lambda e: e.occurred_at)
    as_of = T0 + 60 * DAY

    def outcome(events_in: list[InputEvent]) -> tuple[object, ...]:
        result = run(events_in, as_of=as_of)
        last = result.decisions[-1]
        return last.status, last.reason, last.decided_at, tuple(result.rewards)

    assert outcome(list(arrival)) == outcome(business)


@COMMON
@given(events=history(), data=st.data())
def test_r13_duplicated_events_change_nothing(
    events: list[InputEvent], data: st.DataObject
) -> None:
    """(b) Redelivering any events (same event_id), anywhere after the first delivery,
    gives exactly the same outputs."""
    with_repeats = list(events)
    for _ in range(data.draw(st.integers(0, 6))):
        index = data.draw(st.integers(0, len(events) - 1))
        later = data.draw(st.integers(with_repeats.index(events[index]) + 1, len(with_repeats)))
        with_repeats.insert(later, events[index])
    as_of = T0 + 90 * DAY
    assert run(with_repeats, as_of=as_of).outputs == run(events, as_of=as_of).outputs


@COMMON
@given(events=history())
def test_r8_no_referrer_ever_passes_either_cap(events: list[InputEvent]) -> None:
    """(c) With caps of 3 rewards and 12000 cents (5000 a reward, so the cents cap binds first,
    at 2), no referrer is ever granted more than either allows."""
    programme = terms(max_rewards=3, max_total=12000)
    result = run(events, as_of=T0 + 90 * DAY, programme=programme)
    per_referrer: dict[str, list[RewardGranted]] = {}
    for reward in result.rewards:
        per_referrer.setdefault(reward.referrer_id, []).append(reward)
    for rewards in per_referrer.values():
        assert len(rewards) <= 3
        assert sum(r.amount_cents for r in rewards) <= 12000
    assert len({r.lead_id for r in result.rewards}) == len(result.rewards)


@COMMON
@given(events=history())
def test_r10_granted_at_is_within_due_by_when_the_lead_was_complete_before_due(
    events: list[InputEvent],
) -> None:
    """(d) If every event the grant needed occurred before the hold's end, granted_at <= due_by
    and granted_at is exactly the hold's end."""
    result = run(events, as_of=T0 + 90 * DAY)
    by_id = {e.event_id: e for e in events}
    for reward in result.rewards:
        needed = max(by_id[i].occurred_at for i in reward.source_event_ids)
        hold_end = reward.first_invoice_paid_at + 14 * DAY
        if needed <= hold_end:
            assert reward.granted_at == hold_end
            assert reward.granted_at <= reward.due_by


@COMMON
@given(events=history())
def test_a_closed_lead_never_changes(events: list[InputEvent]) -> None:
    """(e) After a lead's GRANTED or REJECTED decision, nothing more is decided about it
    (only further duplicate submissions are answered, R12) and no reward appears."""
    engine = Engine(terms())
    closed: set[str] = set()
    outputs: list[ReferralDecision | RewardGranted] = []
    for event in events:
        outputs += engine.apply(event)
    outputs += engine.advance_to(T0 + 90 * DAY)
    for output in outputs:
        if isinstance(output, RewardGranted):
            assert output.lead_id not in closed
            continue
        if output.lead_id in closed:
            assert output.reason is RejectionReason.DUPLICATE_LEAD
        elif output.status in (DecisionStatus.GRANTED, DecisionStatus.REJECTED) and (
            output.reason is not RejectionReason.DUPLICATE_LEAD
        ):
            closed.add(output.lead_id)


@settings(max_examples=25, deadline=None)
@given(events=history())
def test_r13_replaying_the_same_log_twice_gives_identical_files(events: list[InputEvent]) -> None:
    """(f) Byte-identical output files from two replays of the same log."""
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        for out in (first, second):
            replay(iter(events), terms(), Path(out), as_of=T0 + 90 * DAY)
        for name in ("reward-granted.jsonl", "referral-decisions.jsonl"):
            assert (Path(first) / name).read_bytes() == (Path(second) / name).read_bytes()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("GRANTED", None),
        ("REJECTED", "referee_already_known"),
        ("REJECTED", "commitment_too_short"),
        ("REJECTED", "refused_by_ringover"),
        ("REJECTED", "referrer_excluded"),
        ("REJECTED", "referrer_cap_reached"),
    ],
)
def test_the_generated_histories_reach_every_outcome(status: str, reason: str | None) -> None:
    """The generator is not vacuous: each outcome above occurs in some generated history."""
    programme = terms(max_rewards=1)

    def reaches(events: list[InputEvent]) -> bool:
        decisions = run(events, as_of=T0 + 90 * DAY, programme=programme).decisions
        return any(
            d.status.value == status and (d.reason.value if d.reason else None) == reason
            for d in decisions
        )

    no_shrinking = settings(
        max_examples=3000, deadline=None, database=None, phases=[Phase.generate]
    )
    find(history(), reaches, settings=no_shrinking)
