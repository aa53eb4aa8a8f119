"""R2 in business time: a referee's first lead is its earliest (occurred_at, then lead_id),
whatever order the leads arrive in, except that a granted lead keeps its place (R13)."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contracts import ClockAdvanced, InputEvent, LeadSubmitted
from streams.plain import to_plain
from streams.rules.lead import lead_step
from streams.rules.model import (
    Displaced,
    FirstGranted,
    FirstInvoicePaid,
    LeadState,
    LeadStatus,
    RefereeChecked,
    RefereeClaim,
    RefereeState,
    Route,
    Send,
    TimerFired,
)
from streams.rules.referee import referee_step
from streams.rules.snapshot import decode_state
from tests.builders import DAY, HOUR, T0, lead, paid, referee, referrer, signed
from tests.unit.rules.conftest import Run, run, terms

SAME = referee(email="boss@acme.example", organization_id=None)


def submitted(lead_id: str, at: int) -> LeadSubmitted:
    """A lead for the one referee of these tests, by a referrer of its own (no cap, no R3)."""
    return lead(
        lead_id,
        at,
        referrer_=referrer(
            referrer_id=f"ref-{lead_id}", email=f"r@{lead_id}.org", organization_id=f"O-{lead_id}"
        ),
        referee_=SAME,
    )


def rejection(result: Run, lead_id: str) -> tuple[int, str | None]:
    (decision,) = [d for d in result.decisions if d.lead_id == lead_id and d.reason is not None]
    return decision.decided_at, decision.cause_event_id


def final(result: Run) -> dict[str, str]:
    return {lead_id: result.story(lead_id)[-1] for lead_id in sorted(result.engine.leads)}


def test_r2_an_earlier_lead_arriving_later_takes_the_first_place() -> None:
    later = submitted("lead-1", T0 + HOUR)
    earlier = submitted("lead-2", T0)
    result = run([later, earlier])
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:referee_already_known"]
    assert result.story("lead-2") == ["ACCEPTED"]
    # decided at its own time, caused by the earlier lead's submission
    assert rejection(result, "lead-1") == (T0 + HOUR, earlier.event_id)


def test_r2_displacement_of_an_accepted_qualified_and_earned_lead() -> None:
    stories = {
        "ACCEPTED": [],
        "QUALIFIED": [signed("lead-1", T0 + DAY)],
        "EARNED": [signed("lead-1", T0 + DAY), paid("acc-lead-1", T0 + 2 * DAY)],
    }
    for status, facts in stories.items():
        later = submitted("lead-1", T0 + HOUR)
        earlier = submitted("lead-2", T0)
        result = run([later, *facts, earlier])
        assert result.story("lead-1")[-2:] == [status, "REJECTED:referee_already_known"], status
        assert rejection(result, "lead-1") == (T0 + HOUR, earlier.event_id)
        assert result.story("lead-2") == ["ACCEPTED"]
        assert result.rewards == []
        assert result.engine.leads["lead-1"].status is LeadStatus.REJECTED


def test_r2_a_granted_first_lead_keeps_its_reward_and_the_earlier_lead_is_rejected() -> None:
    later = submitted("lead-1", T0 + HOUR)
    story = [later, signed("lead-1", T0 + DAY), paid("acc-lead-1", T0 + 2 * DAY)]
    earlier = submitted("lead-2", T0)
    result = run([*story, ClockAdvanced(T0 + 20 * DAY), earlier])
    assert result.story("lead-1") == ["ACCEPTED", "QUALIFIED", "EARNED", "GRANTED"]
    assert result.story("lead-2") == ["REJECTED:referee_already_known"]
    assert [r.lead_id for r in result.rewards] == ["lead-1"]


def test_r2_a_closed_lead_keeps_its_outcome_when_displaced() -> None:
    later = submitted("lead-1", T0 + HOUR)
    short = signed("lead-1", T0 + DAY, months=6)
    result = run([later, short, submitted("lead-2", T0)])
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:commitment_too_short"]
    assert result.story("lead-2") == ["ACCEPTED"]


def test_r2_three_leads_in_every_arrival_order_give_the_business_time_outcome() -> None:
    leads = [
        submitted("lead-a", T0 + 2 * HOUR),
        submitted("lead-b", T0),
        submitted("lead-c", T0 + HOUR),
    ]
    business = final(run(sorted(leads, key=lambda e: e.occurred_at)))
    assert business == {
        "lead-a": "REJECTED:referee_already_known",
        "lead-b": "ACCEPTED",
        "lead-c": "REJECTED:referee_already_known",
    }
    for order in itertools.permutations(leads):
        assert final(run(order)) == business, [e.lead_id for e in order]


def test_r2_a_tie_at_one_instant_goes_to_the_smaller_lead_id_in_either_order() -> None:
    for order in (["lead-x", "lead-y"], ["lead-y", "lead-x"]):
        result = run([submitted(lead_id, T0) for lead_id in order])
        assert final(result) == {"lead-x": "ACCEPTED", "lead-y": "REJECTED:referee_already_known"}


def test_r2_redelivered_claims_displacements_and_grants_change_nothing() -> None:
    identity = "id-1"
    first = RefereeClaim(identity, "lead-1", T0 + HOUR, "e1")
    earlier = RefereeClaim(identity, "lead-2", T0, "e2")
    state, out = referee_step(None, first)
    assert [s.message for s in out if isinstance(s, Send)] == [RefereeChecked("lead-1", True)]
    state, out = referee_step(state, earlier)
    assert [(s.route, s.message) for s in out if isinstance(s, Send)] == [
        (Route.LEAD, Displaced("lead-1", identity, "lead-2", "e2")),
        (Route.LEAD, RefereeChecked("lead-2", True)),
    ]
    # redeliveries: the same answers, no second displacement
    assert referee_step(state, earlier) == (
        state,
        [Send(Route.LEAD, "lead-2", RefereeChecked("lead-2", True))],
    )
    assert referee_step(state, first)[1] == [
        Send(Route.LEAD, "lead-1", RefereeChecked("lead-1", False))
    ]
    granted, out = referee_step(state, FirstGranted(identity, "lead-2", T0, "e2"))
    assert out == []
    assert granted.granted
    assert referee_step(granted, FirstGranted(identity, "lead-2", T0, "e2")) == (granted, [])
    # once granted, even an earlier claim is not first
    earliest = RefereeClaim(identity, "lead-0", T0 - DAY, "e0")
    assert referee_step(granted, earliest) == (
        granted,
        [Send(Route.LEAD, "lead-0", RefereeChecked("lead-0", False))],
    )


def test_r2_a_displacement_that_crosses_the_grant_rejects_the_claimant_instead() -> None:
    """The referee did not know yet that lead-1 was due: it told lead-2 it was first and
    displaced lead-1; lead-1, due, keeps its place and turns lead-2 down."""
    programme = terms()
    state: LeadState | None = None
    for message, now in [
        (submitted("lead-1", T0 + HOUR), T0 + HOUR),
        (RefereeChecked("lead-1", True), T0 + HOUR),
        (signed("lead-1", T0 + DAY), T0 + DAY),
        (FirstInvoicePaid("lead-1", "acc-lead-1", "inv-1", T0 + 2 * DAY, "pay"), T0 + 2 * DAY),
    ]:
        state, _ = lead_step(state, message, programme, now)
    assert state is not None
    state, emits = lead_step(state, TimerFired("lead-1", T0 + 16 * DAY), programme, T0 + 16 * DAY)
    assert state.status is LeadStatus.DUE
    assert any(isinstance(e, Send) and isinstance(e.message, FirstGranted) for e in emits)
    displaced = Displaced("lead-1", "id-1", "lead-2", "e2")
    after, emits = lead_step(state, displaced, programme, T0 + 16 * DAY)
    assert after == state
    assert [(s.route, s.message) for s in emits if isinstance(s, Send)] == [
        (Route.LEAD, RefereeChecked("lead-2", False)),
        (Route.REFEREE, FirstGranted("id-1", "lead-1", T0 + HOUR, state.submission.event_id)),  # type: ignore[union-attr]
    ]
    # the claimant, accepted meanwhile, loses its place
    claimant, _ = lead_step(None, submitted("lead-2", T0), programme, T0 + 16 * DAY)
    claimant, _ = lead_step(claimant, RefereeChecked("lead-2", True), programme, T0 + 16 * DAY)
    assert claimant.status is LeadStatus.ACCEPTED
    claimant, out = lead_step(claimant, RefereeChecked("lead-2", False), programme, T0 + 16 * DAY)
    assert claimant.status is LeadStatus.REJECTED
    assert [d.reason.value for d in out if hasattr(d, "reason") and d.reason] == [
        "referee_already_known"
    ]
    # and a redelivery of either message changes nothing more
    assert lead_step(claimant, RefereeChecked("lead-2", False), programme, T0 + 16 * DAY) == (
        claimant,
        [],
    )
    assert lead_step(after, displaced, programme, T0 + 16 * DAY)[0] == after


def test_r2_states_from_before_business_time_upgrade() -> None:
    old_referee = json.dumps({"identity": "id-1", "first_lead_id": "lead-1", "v": 1}).encode()
    upgraded = decode_state(RefereeState, old_referee)
    assert upgraded == RefereeState("id-1", "lead-1", 0, "", False)
    # the first to arrive keeps its place against any claim, as it did
    assert referee_step(upgraded, RefereeClaim("id-1", "lead-0", T0, "e0"))[0] == upgraded
    lead_state = run([submitted("lead-1", T0)]).engine.leads["lead-1"]
    plain = to_plain(lead_state)  # a state as workers wrote it before rows
    del plain["submission"]["referee"]
    plain["v"] = 2
    old_lead = decode_state(LeadState, json.dumps(plain).encode())
    assert old_lead.submission is not None
    assert old_lead.submission.referee is None


@st.composite
def referee_histories(draw: st.DrawFn) -> list[InputEvent]:
    """Leads for three referees at random times (ties included), each signed and paid; the
    leads arrive first in a random order, the later facts after all of them (so no lead is
    granted before the last lead of its referee arrives)."""
    referees = [referee(email=f"boss@co{i}.example", organization_id=None) for i in range(3)]
    count = draw(st.integers(min_value=2, max_value=7))
    leads, facts = [], []
    for n in range(count):
        lead_id = f"lead-{n}"
        at = T0 + draw(st.integers(0, 6)) * HOUR
        leads.append(
            lead(
                lead_id,
                at,
                referrer_=referrer(
                    referrer_id=f"ref-{n}", email=f"r@{n}.org", organization_id=f"O{n}"
                ),
                referee_=draw(st.sampled_from(referees)),
            )
        )
        facts += [signed(lead_id, T0 + DAY + n), paid(f"acc-{lead_id}", T0 + 2 * DAY + n)]
    order = draw(st.permutations(leads))
    return [*order, *sorted(facts, key=lambda e: e.occurred_at)]


@settings(max_examples=200, deadline=None)
@given(referee_histories())
def test_r2_any_arrival_order_of_the_leads_gives_the_business_time_outcome(
    events: list[InputEvent],
) -> None:
    leads = [e for e in events if isinstance(e, LeadSubmitted)]
    rest = events[len(leads) :]
    in_time = sorted(leads, key=lambda e: (e.occurred_at, e.lead_id))
    expected = run([*in_time, *rest, ClockAdvanced(T0 + 30 * DAY)])
    actual = run([*events, ClockAdvanced(T0 + 30 * DAY)])
    assert final(actual) == final(expected)
    assert sorted(r.lead_id for r in actual.rewards) == sorted(r.lead_id for r in expected.rewards)
    assert actual.rewards  # the histories always grant someone
    by_lead = sorted(actual.rewards, key=lambda r: r.lead_id)
    assert by_lead == sorted(expected.rewards, key=lambda r: r.lead_id)
