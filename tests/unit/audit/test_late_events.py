"""R6 in audits: an event that reaches a lead after its grant fired changes nothing live, and
a recomputation that saw it in time differs; the audit names that cause and accepts it."""

from __future__ import annotations

from streams.audit.compare import LATE_EVENT, compare
from streams.audit.journal_replay import replay_journals
from streams.audit.sources import Journals
from streams.contracts import ReferralDecision, RewardGranted
from streams.rules.model import (
    ClockTick,
    Displaced,
    FirstGranted,
    FirstInvoicePaid,
    RefereeChecked,
    RefereeClaim,
    Route,
)
from tests.builders import DAY, T0, lead, paid, refused, signed
from tests.unit.rules.conftest import run, terms

DUE = T0 + 16 * DAY  # paid at T0 + 2 days, 14 days of hold


def _lead_journal(*late: object) -> Journals:
    """The lead journal as the live worker writes it: lead-1 submitted, checked, signed,
    paid, then a clock record past its due time (the grant), then `late`."""
    invoice = paid()
    first_invoice = FirstInvoicePaid(
        "lead-1", invoice.account_id, invoice.invoice_id, invoice.occurred_at, invoice.event_id
    )
    messages = [
        lead(),
        RefereeChecked("lead-1", first=True),
        signed(event_id="sign-1"),
        first_invoice,
        ClockTick(DUE + DAY),
        *late,
    ]
    return Journals({Route.LEAD: {0: list(enumerate(messages))}})  # type: ignore[arg-type]


def test_r6_a_refusal_dated_before_the_grant_but_journaled_after_it_is_a_late_event() -> None:
    replayed = replay_journals(_lead_journal(refused(at=DUE - DAY)), terms())
    assert replayed.late_after_grant == {"lead-1"}
    assert not [o for o in replayed.outputs if getattr(o, "reason", None)]  # live: no rejection


def test_r6_a_redelivery_or_an_event_dated_after_the_grant_is_not_a_late_event() -> None:
    redelivered = signed(event_id="sign-1")
    after = refused(at=DUE + DAY)
    assert replay_journals(_lead_journal(redelivered, after), terms()).late_after_grant == set()


def test_r6_differences_about_a_lead_with_a_late_event_are_explained() -> None:
    """Live granted lead-1 before its refusal arrived; a recomputation that saw the refusal
    first rejects it: an extra reward, an extra GRANTED, a missing REJECTED, all explained."""
    live = run([lead(), signed(), paid()], as_of=DUE + DAY).outputs
    recomputed = run([lead(), signed(), paid(), refused(at=DUE - DAY)], as_of=DUE + DAY).outputs
    emitted = {
        "reward-granted": [o for o in live if isinstance(o, RewardGranted)],
        "referral-decisions": [o for o in live if isinstance(o, ReferralDecision)],
    }
    unexplained = compare(recomputed, emitted, {"lead-1"})
    assert not unexplained.ok

    report = compare(recomputed, emitted, {"lead-1"}, late_after_grant={"lead-1"})
    kinds = {(d.kind, d.topic) for d in report.differences}
    assert kinds == {
        ("extra", "reward-granted"),
        ("extra", "referral-decisions"),
        ("missing", "referral-decisions"),
    }
    assert {d.cause for d in report.differences} == {LATE_EVENT}
    assert report.ok


def test_r13_a_reward_missing_from_the_topic_is_never_explained_by_a_late_event() -> None:
    """The grant fired live, so its reward must be on the topic whatever came later: billing
    would miss it otherwise."""
    outputs = run([lead(), signed(), paid()], as_of=DUE + DAY).outputs
    emitted = {
        "reward-granted": [],
        "referral-decisions": [o for o in outputs if isinstance(o, ReferralDecision)],
    }
    report = compare(outputs, emitted, {"lead-1"}, late_after_grant={"lead-1"})
    assert [(d.kind, d.cause) for d in report.differences] == [("missing", "unexplained")]
    assert not report.ok


def _referee_journal(*messages: object) -> Journals:
    return Journals({Route.REFEREE: {0: list(enumerate(messages))}})  # type: ignore[arg-type]


def test_r2_a_claim_dated_before_a_granted_first_lead_explains_both_leads() -> None:
    """R2's exception: lead-2 was granted before lead-1, dated earlier for the same referee,
    reached the referee step; lead-2 keeps its reward and lead-1 is rejected live, where a
    recomputation in business time grants lead-1. Both leads' differences are explained."""
    journal = _referee_journal(
        RefereeClaim("example.com", "lead-2", T0 + DAY, "ev-2"),
        FirstGranted("example.com", "lead-2", T0 + DAY, "ev-2"),
        RefereeClaim("example.com", "lead-1", T0, "ev-1"),
    )
    assert replay_journals(journal, terms()).late_after_grant == {"lead-1", "lead-2"}


def test_r2_a_claim_before_the_grant_later_dated_or_undated_explains_nothing() -> None:
    displacing = _referee_journal(
        RefereeClaim("example.com", "lead-2", T0 + DAY, "ev-2"),
        RefereeClaim("example.com", "lead-1", T0, "ev-1"),  # lead-2 still open: displaced
        FirstGranted("example.com", "lead-1", T0, "ev-1"),
    )
    later = _referee_journal(
        RefereeClaim("example.com", "lead-1", T0, "ev-1"),
        FirstGranted("example.com", "lead-1", T0, "ev-1"),
        RefereeClaim("example.com", "lead-2", T0 + DAY, "ev-2"),
    )
    undated = _referee_journal(  # written by a worker before business-time order
        RefereeClaim("example.com", "lead-2", T0 + DAY, "ev-2"),
        FirstGranted("example.com", "lead-2", T0 + DAY, "ev-2"),
        RefereeClaim("example.com", "lead-1"),
    )
    for journal in (displacing, later, undated):
        assert replay_journals(journal, terms()).late_after_grant == set()


def test_r2_a_displacement_that_crossed_the_grant_explains_both_leads() -> None:
    """The referee step displaced lead-1 while its grant was on the way: lead-1 keeps its
    place and refuses the claimant itself."""
    displaced = Displaced("lead-1", "example.com", "lead-0", "ev-0")
    replayed = replay_journals(_lead_journal(displaced), terms())
    assert replayed.late_after_grant == {"lead-1", "lead-0"}
