"""One test (or more) per rule of RULES.md, each with its worked example in the docstring.

Times are offsets from T0 = 2026-01-05T10:00Z; the default terms hold for 14 days and pay within
30; `lead()`, `signed()`, `paid()` and `refused()` build valid events for lead-1 unless told.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contracts import (
    ClockAdvanced,
    InputEvent,
    ReferrerKind,
    RewardKind,
    format_time,
    parse_time,
)
from streams.contracts.records import DecisionStatus
from streams.replay import ReplaySummary
from streams.rules import (
    Engine,
    account_step,
    lead_step,
    parse_terms,
    referrer_step,
    reward_id,
    route_of,
)
from streams.rules.lead import REWARD_NAMESPACE
from streams.rules.model import (
    AccountOpened,
    FirstInvoicePaid,
    GrantRequested,
    LeadStatus,
    RefereeChecked,
    Route,
    Send,
    TimerFired,
)
from tests.builders import (
    DAY,
    HOUR,
    T0,
    lead,
    paid,
    referee,
    referrer,
    refused,
    signed,
    terms_toml,
)
from tests.unit.rules.conftest import run, terms

HAPPY = ["ACCEPTED", "QUALIFIED", "EARNED", "GRANTED"]


def test_happy_path_grants_one_reward() -> None:
    """lead T0, signed 12 months T0+1d, first invoice paid T0+2d -> EARNED; the hold ends at
    T0+16d -> GRANTED, one reward of 5000 EUR cents."""
    result = run([lead(), signed(), paid()], as_of=T0 + 20 * DAY)
    assert result.story("lead-1") == HAPPY
    assert len(result.rewards) == 1


# -- R1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [ReferrerKind.RESELLER, ReferrerKind.DISTRIBUTOR, ReferrerKind.PARTNER]
)
def test_r1_resellers_distributors_and_partners_are_excluded(kind: ReferrerKind) -> None:
    """A PARTNER submits lead-1 -> REJECTED referrer_excluded at once; nothing it does later
    (signature, payment) earns anything."""
    result = run([lead(kind=kind), signed(), paid()], as_of=T0 + 40 * DAY)
    assert result.story("lead-1") == ["REJECTED:referrer_excluded"]
    assert result.rewards == []


@pytest.mark.parametrize("kind", [ReferrerKind.CLIENT, ReferrerKind.INDIVIDUAL])
def test_r1_clients_and_individuals_take_part(kind: ReferrerKind) -> None:
    """A CLIENT or an INDIVIDUAL referrer goes the whole way to GRANTED."""
    assert run([lead(kind=kind), signed(), paid()], as_of=T0 + 40 * DAY).story("lead-1") == HAPPY


def test_r1_referrer_without_accepted_terms_is_rejected() -> None:
    """terms_accepted_version = null -> REJECTED terms_not_accepted."""
    result = run([lead(terms_accepted_version=None)])
    assert result.story("lead-1") == ["REJECTED:terms_not_accepted"]


def test_r1_exclusion_is_checked_before_terms_acceptance() -> None:
    """A RESELLER without accepted terms fails R1's first check: referrer_excluded."""
    result = run([lead(kind=ReferrerKind.RESELLER, terms_accepted_version=None)])
    assert result.story("lead-1") == ["REJECTED:referrer_excluded"]


# -- R2 -----------------------------------------------------------------------------------


def test_r2_referee_known_to_ringover_is_rejected() -> None:
    """known_to_ringover = true -> REJECTED referee_already_known."""
    result = run([lead(referee_=referee(known_to_ringover=True))])
    assert result.story("lead-1") == ["REJECTED:referee_already_known"]


def test_r2_second_lead_for_the_same_referee_is_rejected_whoever_submits_it() -> None:
    """ref-1 submits lead-1 for bob@newco.example; ref-2 then submits lead-2 for
    carol@newco.example (same domain = same referee) -> lead-2 REJECTED referee_already_known."""
    first = lead("lead-1", referee_=referee(email="bob@newco.example"))
    second = lead(
        "lead-2",
        at=T0 + HOUR,
        referrer_=referrer(referrer_id="ref-2", email="x@other.example", organization_id="O2"),
        referee_=referee(email="carol@NEWCO.example"),
    )
    result = run([first, second])
    assert result.story("lead-1") == ["ACCEPTED"]
    assert result.story("lead-2") == ["REJECTED:referee_already_known"]


def test_r2_a_rejected_first_lead_still_claims_the_referee() -> None:
    """A PARTNER's lead-1 is rejected (referrer_excluded) but came first: a client's lead-2
    for the same referee is rejected referee_already_known ("whatever became of it")."""
    first = lead("lead-1", kind=ReferrerKind.PARTNER, referee_=referee(organization_id="FR-9"))
    second = lead("lead-2", at=T0 + HOUR, referee_=referee(organization_id="fr-9 "))
    result = run([first, second])
    assert result.story("lead-1") == ["REJECTED:referrer_excluded"]
    assert result.story("lead-2") == ["REJECTED:referee_already_known"]


def test_r2_free_mail_referees_are_told_apart_by_their_whole_address() -> None:
    """bob@gmail.com and carol@gmail.com are different referees: both accepted;
    a second lead for BOB@gmail.com is the same referee: rejected."""
    result = run(
        [
            lead("lead-1", referee_=referee(email="bob@gmail.com")),
            lead("lead-2", referee_=referee(email="carol@gmail.com")),
            lead("lead-3", referee_=referee(email="BOB@gmail.com")),
        ]
    )
    assert result.story("lead-1") == ["ACCEPTED"]
    assert result.story("lead-2") == ["ACCEPTED"]
    assert result.story("lead-3") == ["REJECTED:referee_already_known"]


def test_r2_a_duplicate_lead_does_not_claim_its_referee() -> None:
    """A duplicate submission of lead-1 naming referee x@fresh.example is rejected
    duplicate_lead and does not claim x@fresh.example: lead-2 for it is accepted."""
    result = run(
        [
            lead("lead-1"),
            lead("lead-1", referee_=referee(email="x@fresh.example")),
            lead("lead-2", referee_=referee(email="y@fresh.example")),
        ]
    )
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:duplicate_lead"]
    assert result.story("lead-2") == ["ACCEPTED"]


# -- R3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("referrer_over", "referee_over"),
    [
        ({"organization_id": "FR-ACME"}, {"organization_id": "fr-acme", "email": "b@x.example"}),
        ({"email": "alice@acme.example"}, {"email": "bob@ACME.example"}),
        ({"email": "alice@gmail.com"}, {"email": "Alice@Gmail.com"}),
    ],
    ids=["same-organization-id", "same-domain", "same-address"],
)
def test_r3_referee_from_the_referrers_own_organization_is_rejected(
    referrer_over: dict[str, str], referee_over: dict[str, str]
) -> None:
    """Same organization id, same e-mail domain, or same address -> same_organization."""
    result = run([lead(referrer_=referrer(**referrer_over), referee_=referee(**referee_over))])
    assert result.story("lead-1") == ["REJECTED:same_organization"]


def test_r3_a_shared_free_mail_domain_is_not_one_organization() -> None:
    """alice@gmail.com refers bob@gmail.com: different people -> ACCEPTED."""
    result = run(
        [
            lead(
                referrer_=referrer(email="alice@gmail.com", organization_id=None),
                referee_=referee(email="bob@gmail.com"),
            )
        ]
    )
    assert result.story("lead-1") == ["ACCEPTED"]


def test_r3_free_mail_domains_come_from_the_terms_file_when_listed() -> None:
    """With free_mail_domains = ["corp-mail.example"], two people there are not one company,
    and gmail.com no longer is free mail."""
    programme = parse_terms('free_mail_domains = ["corp-mail.example"]\n' + terms_toml())
    mixed = [
        lead(
            "lead-1",
            referrer_=referrer(email="a@corp-mail.example", organization_id=None),
            referee_=referee(email="b@corp-mail.example"),
        ),
        lead(
            "lead-2",
            referrer_=referrer(email="a@gmail.com", organization_id=None),
            referee_=referee(email="b@gmail.com"),
        ),
    ]
    result = run(mixed, programme=programme)
    assert result.story("lead-1") == ["ACCEPTED"]
    assert result.story("lead-2") == ["REJECTED:same_organization"]


def test_r3_is_checked_after_r2() -> None:
    """A referee both already known and from the referrer's organization: R2 speaks first."""
    result = run([lead(referee_=referee(known_to_ringover=True, email="bob@acme.example"))])
    assert result.story("lead-1") == ["REJECTED:referee_already_known"]


# -- R4 -----------------------------------------------------------------------------------


def test_r4_refusal_rejects_an_open_lead() -> None:
    """lead T0, refused T0+1d -> REJECTED refused_by_ringover; the later signature and
    payment change nothing and emit nothing."""
    result = run([lead(), refused(at=T0 + DAY), signed(at=T0 + 2 * DAY), paid(at=T0 + 3 * DAY)])
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:refused_by_ringover"]
    assert result.rewards == []


def test_r4_refusal_during_the_hold_stops_the_grant() -> None:
    """Paid T0+2d (due T0+16d); refused T0+10d, inside the hold -> no reward."""
    result = run([lead(), signed(), paid(), refused(at=T0 + 10 * DAY)], as_of=T0 + 40 * DAY)
    assert result.story("lead-1") == [
        "ACCEPTED",
        "QUALIFIED",
        "EARNED",
        "REJECTED:refused_by_ringover",
    ]
    assert result.rewards == []


def test_r4_refusal_after_the_grant_changes_nothing() -> None:
    """Due T0+16d, granted then; a refusal at T0+20d finds a closed lead: nothing happens."""
    result = run([lead(), signed(), paid(), refused(at=T0 + 20 * DAY)], as_of=T0 + 40 * DAY)
    assert result.story("lead-1") == HAPPY
    assert len(result.rewards) == 1


def test_r4_refusal_at_the_due_instant_comes_after_the_timer() -> None:
    """A timer due at the same instant as an event fires first: refused exactly at T0+16d,
    the due time -> granted, and the refusal changes nothing."""
    result = run([lead(), signed(), paid(), refused(at=T0 + 16 * DAY)])
    assert result.story("lead-1") == HAPPY


def test_r4_refusal_that_arrives_before_the_lead_applies_once_it_is_accepted() -> None:
    """The refusal (T0+1h) arrives before lead-submitted (T0): ACCEPTED then REJECTED."""
    result = run([refused(at=T0 + HOUR), lead(at=T0)])
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:refused_by_ringover"]
    (rejection,) = [d for d in result.decisions if d.reason is not None]
    assert rejection.decided_at == T0 + HOUR


def test_r4_a_refusal_and_a_signature_at_the_same_instant_play_refusal_first() -> None:
    """Both at T0+1d, both before the lead (T0) arrives: once accepted, the lead plays its
    facts in business-time order, and at one instant Ringover's refusal comes first."""
    result = run([signed(at=T0 + DAY), refused(at=T0 + DAY), lead(at=T0)])
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:refused_by_ringover"]


# -- R5 -----------------------------------------------------------------------------------


def test_r5_twelve_months_qualifies() -> None:
    """commitment_months = 12 (the minimum) -> QUALIFIED, decided at the signature."""
    result = run([lead(), signed(months=12, at=T0 + DAY)])
    assert result.story("lead-1") == ["ACCEPTED", "QUALIFIED"]
    assert result.decisions[-1].decided_at == T0 + DAY


def test_r5_shorter_commitment_is_rejected() -> None:
    """commitment_months = 11 -> REJECTED commitment_too_short; the payment earns nothing."""
    result = run([lead(), signed(months=11), paid()], as_of=T0 + 40 * DAY)
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:commitment_too_short"]
    assert result.rewards == []


# -- R6 -----------------------------------------------------------------------------------


def test_r6_only_the_first_invoice_triggers() -> None:
    """Invoice 2 paid before invoice 1: nothing; invoice 1 earns, paid_at = its occurred_at."""
    result = run(
        [lead(), signed(), paid(sequence=2, at=T0 + 2 * DAY), paid(sequence=1, at=T0 + 3 * DAY)],
        as_of=T0 + 40 * DAY,
    )
    assert result.story("lead-1") == HAPPY
    assert result.reward("lead-1").first_invoice_paid_at == T0 + 3 * DAY
    assert result.reward("lead-1").first_invoice_id == "inv-acc-lead-1-1"


def test_r6_a_later_invoice_travels_to_no_step() -> None:
    """The live worker journals only what a step acts on: invoice 1 goes to its account's
    step, invoice 2 nowhere (the account step would ignore it)."""
    first = route_of(paid(sequence=1))
    assert first is not None
    assert (first.route, first.key) == (Route.ACCOUNT, "acc-lead-1")
    assert route_of(paid(sequence=2)) is None
    assert route_of(paid(sequence=3, at=T0)) is None


def test_r6_a_second_first_invoice_is_ignored() -> None:
    """Billing resends sequence 1 as another invoice: the first one paid stands."""
    result = run(
        [lead(), signed(), paid(invoice_id="inv-A"), paid(invoice_id="inv-B", at=T0 + 5 * DAY)],
        as_of=T0 + 40 * DAY,
    )
    assert result.reward("lead-1").first_invoice_id == "inv-A"


def _interleavings(a: list[Any], b: list[Any]) -> list[list[Any]]:
    """Every merge of `a` and `b` that keeps the order within each."""
    if not a or not b:
        return [a + b]
    return [[a[0], *rest] for rest in _interleavings(a[1:], b)] + [
        [b[0], *rest] for rest in _interleavings(a, b[1:])
    ]


def test_r6_the_account_step_forwards_the_same_first_invoice_however_its_two_logs_interleave() -> (
    None
):
    """Live, the account agent reads its journal (the leads that opened the account) and
    billing's invoices on two partitions whose interleaving no log records: what it forwards
    must be the same for every interleaving, the first lead that opened the account with the
    first invoice paid on it, once."""
    opened = [AccountOpened("acc-1", "lead-1"), AccountOpened("acc-1", "lead-2")]
    first = paid("acc-1", invoice_id="inv-A", event_id="pay-A")
    invoices = [first, first, paid("acc-1", invoice_id="inv-B", event_id="pay-B")]
    forwarded = set()
    for messages in _interleavings(opened, invoices):
        state, sent = None, []
        for message in messages:
            state, emits = account_step(state, message)
            sent.extend(emits)
        assert len(sent) == 1
        forwarded.add(sent[0])
    assert forwarded == {
        Send(
            Route.LEAD,
            "lead-1",
            FirstInvoicePaid("lead-1", "acc-1", "inv-A", first.occurred_at, "pay-A"),
        )
    }


def test_r6_later_invoices_of_accounts_no_lead_signed_leave_no_state() -> None:
    """Billing invoices every client: invoice 2 of acc-other (never referred) is no first
    invoice and is kept nowhere; its invoice 1 waits in case a lead signs for the account."""
    result = run([paid("acc-other", sequence=2), paid("acc-none", sequence=3)])
    assert result.outputs == []
    assert result.engine.accounts == {}
    result = run([paid("acc-other", sequence=1)])
    assert result.engine.accounts["acc-other"].first_invoice is not None


@pytest.mark.parametrize(
    "order",
    [
        ("lead", "sign", "pay"),
        ("pay", "sign", "lead"),
        ("sign", "lead", "pay"),
        ("pay", "lead", "sign"),
    ],
)
def test_r6_arrival_order_does_not_change_the_outcome(order: tuple[str, ...]) -> None:
    """A payment before the signature, a signature before the lead: same decisions and reward
    as in business-time order, as long as no timer fires in between."""
    events = {"lead": lead(event_id="L"), "sign": signed(event_id="S"), "pay": paid(event_id="P")}
    result = run([events[name] for name in order], as_of=T0 + 40 * DAY)
    reference = run([events["lead"], events["sign"], events["pay"]], as_of=T0 + 40 * DAY)
    assert result.decisions == reference.decisions
    assert result.rewards == reference.rewards


def test_r6_a_fired_timer_is_not_undone() -> None:
    """Paid T0+2d, due T0+16d; another lead's event at T0+20d fires the timer; a refusal
    dated T0+10d arriving afterwards cannot take the reward back."""
    result = run(
        [lead(), signed(), paid(), lead("lead-9", at=T0 + 20 * DAY), refused(at=T0 + 10 * DAY)]
    )
    assert result.story("lead-1") == HAPPY


# -- R7 -----------------------------------------------------------------------------------


def test_r7_the_amount_is_the_leads_terms_amount() -> None:
    """Terms with reward_amount_cents = 7500: the reward is 7500 EUR cents."""
    result = run([lead(), signed(), paid()], as_of=T0 + 40 * DAY, programme=terms(amount=7500))
    reward = result.reward("lead-1")
    assert (reward.amount_cents, reward.currency) == (7500, "EUR")


# -- R8 -----------------------------------------------------------------------------------


def _leads_of_one_referrer(count: int, *, paid_at: int = T0 + 2 * DAY) -> list[InputEvent]:
    events: list[InputEvent] = []
    for i in range(count):
        lead_id = f"lead-{i}"
        events += [lead(lead_id), signed(lead_id), paid(f"acc-{lead_id}", at=paid_at + i * HOUR)]
    return events


def test_r8_at_most_max_rewards_per_referrer() -> None:
    """52 leads of ref-1 all earn: the first 50 due are granted, the last two are rejected
    referrer_cap_reached."""
    result = run(_leads_of_one_referrer(52), as_of=T0 + 60 * DAY)
    assert len(result.rewards) == 50
    assert result.story("lead-50") == [
        "ACCEPTED",
        "QUALIFIED",
        "EARNED",
        "REJECTED:referrer_cap_reached",
    ]
    assert result.story("lead-51")[-1] == "REJECTED:referrer_cap_reached"
    assert result.engine.referrers["ref-1"].granted_cents == 250000


def test_r8_at_most_max_total_cents_per_referrer() -> None:
    """Rewards of 10000 cents under a 25000 total cap: two granted, the third would pass it."""
    programme = terms(amount=10000, max_total=25000)
    result = run(_leads_of_one_referrer(3), as_of=T0 + 60 * DAY, programme=programme)
    assert len(result.rewards) == 2
    assert result.story("lead-2")[-1] == "REJECTED:referrer_cap_reached"


def test_r8_leads_due_together_never_both_pass_a_cap_only_one_fits_under() -> None:
    """One slot left (max_rewards 2, one granted); lead-1 and lead-2 become due at the same
    instant: exactly one is granted."""
    programme = terms(max_rewards=2)
    events = [lead("lead-0"), signed("lead-0"), paid("acc-lead-0", at=T0 + DAY)]
    for lead_id in ("lead-1", "lead-2"):
        events += [lead(lead_id), signed(lead_id), paid(f"acc-{lead_id}", at=T0 + 3 * DAY)]
    result = run(events, as_of=T0 + 60 * DAY, programme=programme)
    assert len(result.rewards) == 2
    outcomes = sorted(result.story("lead-1")[-1:] + result.story("lead-2")[-1:])
    assert outcomes == ["GRANTED", "REJECTED:referrer_cap_reached"]


def test_r8_caps_are_per_referrer() -> None:
    """ref-1 at its cap does not stop ref-2."""
    programme = terms(max_rewards=1)
    events = [
        lead("lead-1"), signed("lead-1"), paid("acc-lead-1"),
        lead("lead-2"), signed("lead-2"), paid("acc-lead-2"),
        lead("lead-3", referrer_=referrer(referrer_id="ref-2", organization_id="O2",
                                          email="z@two.example")),
        signed("lead-3"), paid("acc-lead-3"),
    ]  # fmt: skip
    result = run(events, as_of=T0 + 60 * DAY, programme=programme)
    assert sorted(r.lead_id for r in result.rewards) == ["lead-1", "lead-3"]


# -- R9 -----------------------------------------------------------------------------------


def test_r9_invoice_reduction_goes_to_the_referrers_account() -> None:
    """A client referrer (account acc-acme) preferring INVOICE_REDUCTION."""
    reward = run([lead(), signed(), paid()], as_of=T0 + 40 * DAY).reward("lead-1")
    assert reward.kind is RewardKind.INVOICE_REDUCTION
    assert (reward.referrer_account_id, reward.voucher_email) == ("acc-acme", None)


def test_r9_referrer_without_account_gets_a_gift_voucher_at_their_signup_email() -> None:
    """An individual with no account_id prefers INVOICE_REDUCTION but gets a GIFT_VOUCHER."""
    referrer_ = referrer(account_id=None, kind=ReferrerKind.INDIVIDUAL, email="ind@home.example")
    reward = run([lead(referrer_=referrer_), signed(), paid()], as_of=T0 + 40 * DAY).reward(
        "lead-1"
    )
    assert reward.kind is RewardKind.GIFT_VOUCHER
    assert (reward.voucher_email, reward.referrer_account_id) == ("ind@home.example", None)


def test_r9_a_client_may_prefer_a_gift_voucher() -> None:
    referrer_ = referrer(reward_preference=RewardKind.GIFT_VOUCHER)
    reward = run([lead(referrer_=referrer_), signed(), paid()], as_of=T0 + 40 * DAY).reward(
        "lead-1"
    )
    assert (reward.kind, reward.voucher_email) == (RewardKind.GIFT_VOUCHER, "alice@acme.example")


# -- R10 ----------------------------------------------------------------------------------


def test_r10_granted_at_is_the_end_of_the_hold_and_due_by_the_payout_window() -> None:
    """Paid T0+2d: granted_at = T0+16d (hold 14d), due_by = T0+32d (window 30d)."""
    reward = run([lead(), signed(), paid()], as_of=T0 + 40 * DAY).reward("lead-1")
    assert reward.granted_at == T0 + 16 * DAY
    assert reward.due_by == T0 + 32 * DAY
    assert reward.source_event_ids[0].startswith("lead")


def test_r10_granted_at_is_the_last_needed_event_when_that_is_later() -> None:
    """Paid T0+2d, but the signature is dated T0+20d (after the hold's end T0+16d): the lead
    is granted right after the signature, granted_at = T0+20d."""
    result = run([lead(), paid(at=T0 + 2 * DAY), signed(at=T0 + 20 * DAY)])
    assert result.story("lead-1") == HAPPY
    assert result.reward("lead-1").granted_at == T0 + 20 * DAY


def test_r10_grants_past_due_by_still_happen_and_are_counted() -> None:
    """Signature dated T0+40d, past due_by T0+32d: still granted, counted as overdue."""
    result = run([lead(), paid(at=T0 + 2 * DAY), signed(at=T0 + 40 * DAY)])
    assert len(result.rewards) == 1
    summary = ReplaySummary()
    for output in result.outputs:
        summary.count(output)
    assert summary.overdue == 1


def test_r10_outputs_do_not_depend_on_when_the_clock_was_advanced() -> None:
    """The same log advanced in one jump or in hourly ticks gives identical outputs."""
    events = [lead(event_id="L"), signed(event_id="S"), paid(event_id="P")]
    one_jump = run(events, as_of=T0 + 40 * DAY)
    engine = Engine(terms())
    ticked = []
    for event in events:
        ticked += engine.apply(event)
    for hour in range(40 * 24):
        ticked += engine.advance_to(T0 + 2 * DAY + hour * HOUR)
    assert ticked == one_jump.outputs


def test_r10_a_short_hold_from_the_terms() -> None:
    """hold = PT2S (as in tests): granted 2 seconds after the payment."""
    result = run([lead(), signed(), paid()], as_of=T0 + 3 * DAY, programme=terms(hold="PT2S"))
    assert result.reward("lead-1").granted_at == T0 + 2 * DAY + 2000


# -- R11 ----------------------------------------------------------------------------------


def test_r11_lead_before_the_programme_starts() -> None:
    """A lead of 2021-06-20 -> REJECTED program_not_started, with no terms version."""
    result = run([lead(at=parse_time("2021-06-20T12:00:00Z"))])
    assert result.story("lead-1") == ["REJECTED:program_not_started"]
    assert result.decisions[0].terms_version is None


def test_r11_lead_at_or_after_the_end() -> None:
    """ends_at = 2026-02-01: a lead at exactly ends_at -> REJECTED program_ended."""
    programme = terms(ends_at="2026-02-01T00:00:00Z")
    result = run([lead(at=parse_time("2026-02-01T00:00:00Z"))], programme=programme)
    assert result.story("lead-1") == ["REJECTED:program_ended"]


def test_r11_the_end_rejects_open_leads_not_yet_paid_but_grants_earned_ones() -> None:
    """ends_at = T0+10d. lead-1 earned at T0+2d (due T0+16d) is still granted; lead-2 signed
    but unpaid is rejected program_ended with decided_at = ends_at and no cause event."""
    programme = terms(ends_at=format_time(T0 + 10 * DAY))
    events = [lead("lead-1"), signed("lead-1"), paid("acc-lead-1")]
    events += [lead("lead-2"), signed("lead-2")]
    result = run(events, as_of=T0 + 40 * DAY, programme=programme)
    assert result.story("lead-1") == HAPPY
    assert result.story("lead-2") == ["ACCEPTED", "QUALIFIED", "REJECTED:program_ended"]
    ended = (
        result.decisions[-1]
        if result.decisions[-1].lead_id == "lead-2"
        else next(d for d in result.decisions if d.reason is not None)
    )
    assert (ended.decided_at, ended.cause_event_id) == (T0 + 10 * DAY, None)


def test_r11_a_payment_after_the_end_is_too_late() -> None:
    """ends_at = T0+10d; the first invoice is paid T0+11d: the clock reaches the end first."""
    programme = terms(ends_at=format_time(T0 + 10 * DAY))
    result = run([lead(), signed(), paid(at=T0 + 11 * DAY)], programme=programme)
    assert result.story("lead-1") == ["ACCEPTED", "QUALIFIED", "REJECTED:program_ended"]


def test_r11_facts_dated_before_the_end_play_before_it_though_the_lead_arrives_after() -> None:
    """ends_at = T0+10d. Signature T0+1d and first invoice T0+2d arrive first, the clock
    reaches the end, then lead-submitted dated T0 arrives: the facts come before the end in
    business time, so the lead is earned (due T0+16d) and granted."""
    programme = terms(ends_at=format_time(T0 + 10 * DAY))
    log = [signed(), paid(), ClockAdvanced(T0 + 10 * DAY), lead(at=T0)]
    result = run(log, as_of=T0 + 40 * DAY, programme=programme)
    assert result.story("lead-1") == HAPPY


def test_r11_a_signature_at_the_very_end_comes_after_it() -> None:
    """The same, signed at exactly ends_at: at one instant the timer comes first (RULES.md,
    Time), so the accepted lead is rejected program_ended."""
    programme = terms(ends_at=format_time(T0 + 10 * DAY))
    log = [signed(at=T0 + 10 * DAY), ClockAdvanced(T0 + 10 * DAY), lead(at=T0)]
    result = run(log, as_of=T0 + 40 * DAY, programme=programme)
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:program_ended"]


def test_r11_each_lead_is_judged_under_the_version_in_effect_at_its_time() -> None:
    """A 2026-02-01 version pays 7000: a January lead earns 5000, a February lead 7000."""
    extra = """
[[terms]]
version = "2026-02-01"
effective_from = 2026-02-01T00:00:00Z
reward_amount_cents = 7000
currency = "EUR"
max_rewards = 50
max_total_cents = 350000
min_commitment_months = 12
payout_window = "P30D"
hold = "P14D"
"""
    feb = parse_time("2026-02-02T00:00:00Z")
    events = [lead("lead-1"), signed("lead-1"), paid("acc-lead-1")]
    events += [
        lead("lead-2", at=feb),
        signed("lead-2", at=feb + DAY),
        paid("acc-lead-2", at=feb + 2 * DAY),
    ]
    result = run(events, as_of=feb + 40 * DAY, programme=terms(extra=extra))
    assert (result.reward("lead-1").amount_cents, result.reward("lead-1").terms_version) == (
        5000,
        "2021-06-21",
    )
    assert (result.reward("lead-2").amount_cents, result.reward("lead-2").terms_version) == (
        7000,
        "2026-02-01",
    )


# -- R12 ----------------------------------------------------------------------------------


def test_r12_a_second_submission_of_a_lead_is_rejected_and_changes_nothing() -> None:
    """ref-2 submits lead-1 again (new event_id): REJECTED duplicate_lead under ref-2's name;
    lead-1 goes on for ref-1 and is granted to ref-1."""
    other = referrer(referrer_id="ref-2", organization_id="O2", email="y@two.example")
    result = run(
        [lead(), lead(referrer_=other, at=T0 + HOUR), signed(), paid()], as_of=T0 + 40 * DAY
    )
    assert result.story("lead-1") == ["ACCEPTED", "REJECTED:duplicate_lead", *HAPPY[1:]]
    duplicate = result.decisions[1]
    assert (duplicate.referrer_id, duplicate.decided_at) == ("ref-2", T0 + HOUR)
    assert result.reward("lead-1").referrer_id == "ref-1"


# -- R13 ----------------------------------------------------------------------------------


def test_r13_a_repeated_event_id_is_a_redelivery_and_changes_nothing() -> None:
    """Every event delivered twice (and the submission three times): the same outputs as once."""
    events = [lead(event_id="L"), signed(event_id="S"), paid(event_id="P")]
    once = run(events, as_of=T0 + 40 * DAY)
    twice = run(
        [events[0], events[0], events[1], events[0], events[1], events[2], events[2]],
        as_of=T0 + 40 * DAY,
    )
    assert (twice.decisions, twice.rewards) == (once.decisions, once.rewards)


def test_r13_reward_id_is_derived_from_the_lead_alone() -> None:
    reward = run([lead(), signed(), paid()], as_of=T0 + 40 * DAY).reward("lead-1")
    assert reward.reward_id == reward_id("lead-1") == "f3a194af-bbb9-511a-a031-24504f9a6265"


@given(st.text())
def test_r13_reward_id_is_the_uuid5_of_the_lead_under_the_fixed_namespace(lead_id: str) -> None:
    assert reward_id(lead_id) == str(uuid.uuid5(REWARD_NAMESPACE, lead_id))


def test_r13_a_redelivered_grant_request_is_not_granted_twice() -> None:
    """Live, the lead -> referrer message can be redelivered after a crash, and so can the
    account -> lead one: the receiving state answers a repeat with nothing."""
    programme = terms()
    state, _ = lead_step(None, lead(), programme, T0)
    state, _ = lead_step(state, signed(), programme, T0 + DAY)
    state, _ = lead_step(state, RefereeChecked("lead-1", first=True), programme, T0 + DAY)
    invoice = FirstInvoicePaid("lead-1", "acc-lead-1", "inv-1", T0 + 2 * DAY, "P")
    state, _ = lead_step(state, invoice, programme, T0 + 2 * DAY)
    assert state.status is LeadStatus.EARNED
    assert lead_step(state, invoice, programme, T0 + 2 * DAY) == (state, [])

    state, emits = lead_step(state, TimerFired("lead-1", T0 + 16 * DAY), programme, T0 + 16 * DAY)
    (request,) = [
        e.message for e in emits if isinstance(e, Send) and isinstance(e.message, GrantRequested)
    ]
    referrer_state, first = referrer_step(None, request)
    referrer_state, again = referrer_step(referrer_state, request)
    assert sum(1 for e in first if getattr(e, "reward_id", None)) == 1
    assert again == []
    assert referrer_state.granted_count == 1


# -- R14 ----------------------------------------------------------------------------------


def test_r14_decisions_and_state_keys_carry_no_email_address() -> None:
    """No decision field holds an e-mail; referee identities are hashes; a rejected lead's
    state forgets the voucher e-mail."""
    gift = referrer(account_id=None, email="secret@home.example", organization_id=None)
    result = run(
        [
            lead("lead-1", referrer_=gift, referee_=referee(email="bob@gmail.com")),
            lead("lead-2", referrer_=replace(gift, kind=ReferrerKind.PARTNER)),
            signed("lead-1"),
            paid("acc-lead-1"),
        ],
        as_of=T0 + 40 * DAY,
    )
    for decision in result.decisions:
        assert "@" not in repr(decision)
    for identity in result.engine.referees:
        assert "@" not in identity
        assert len(identity) == 32
    assert result.engine.leads["lead-2"].submission is not None
    assert result.engine.leads["lead-2"].submission.voucher_email is None
    assert result.engine.leads["lead-1"].submission.voucher_email is None  # type: ignore[union-attr]
    assert result.reward("lead-1").voucher_email == "secret@home.example"


# -- check order ------------------------------------------------------------------------


def test_check_order_r12_r11_r1_r2_r3() -> None:
    """A lead failing several checks gets the first failing one's reason."""
    before_start = parse_time("2021-01-01T00:00:00Z")
    colleague_known = referee(known_to_ringover=True, email="x@acme.example")
    partner = referrer(kind=ReferrerKind.PARTNER)
    assert run([lead(at=before_start, referrer_=partner, referee_=colleague_known)]).story(
        "lead-1"
    ) == ["REJECTED:program_not_started"]
    assert run([lead(referrer_=partner, referee_=colleague_known)]).story("lead-1") == [
        "REJECTED:referrer_excluded"
    ]
    assert run([lead(referee_=colleague_known)]).story("lead-1") == [
        "REJECTED:referee_already_known"
    ]


def test_closed_leads_emit_nothing_more() -> None:
    """A rejected lead ignores its signature, payment and refusal (R4's late refusal too)."""
    result = run(
        [lead(kind=ReferrerKind.RESELLER), signed(), paid(), refused(at=T0 + 3 * DAY)],
        as_of=T0 + 40 * DAY,
    )
    assert result.story("lead-1") == ["REJECTED:referrer_excluded"]
    assert [d.status for d in result.decisions] == [DecisionStatus.REJECTED]
