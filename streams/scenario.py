"""A realistic, seeded stream of programme events: for the demo, benchmarks and soak tests.

Thousands of referrers and leads, every rejection reason, redeliveries, duplicate submissions
and out-of-order arrivals. Deterministic for a given seed, so a benchmark's backlog and a
test's expectations are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from streams.contracts.records import (
    ClientSigned,
    InputEvent,
    InvoicePaid,
    LeadSubmitted,
    Referee,
    ReferralRefused,
    Referrer,
    ReferrerKind,
    RewardKind,
)

MINUTE = 60_000


@dataclass(frozen=True)
class ScenarioShape:
    """How many of what: the proportions of the stream."""

    referrers: int = 1000
    leads: int = 5000
    start_ms: int = 1_767_607_200_000  # 2026-01-05T10:00:00Z
    lead_spacing_ms: int = MINUTE
    step_ms: int = 3 * 3600 * 1000  # typical gap between a lead's events
    invoice_interval_ms: int = 30 * 24 * 3600 * 1000  # between a client's monthly invoices
    seed: int = 7


def _referrers(rng: random.Random, count: int) -> list[Referrer]:
    out = []
    for i in range(count):
        roll = rng.random()
        kind = ReferrerKind.CLIENT
        if roll < 0.04:
            kind = rng.choice(
                [ReferrerKind.RESELLER, ReferrerKind.DISTRIBUTOR, ReferrerKind.PARTNER]
            )
        elif roll < 0.25:
            kind = ReferrerKind.INDIVIDUAL
        client = kind is ReferrerKind.CLIENT
        domain = f"org{i}.example" if client else rng.choice(["gmail.com", "outlook.com"])
        out.append(
            Referrer(
                referrer_id=f"ref-{i:06d}",
                kind=kind,
                email=f"referrer{i}@{domain}",
                reward_preference=(
                    RewardKind.INVOICE_REDUCTION if rng.random() < 0.7 else RewardKind.GIFT_VOUCHER
                ),
                organization_id=f"ORG-{i:06d}" if client else None,
                account_id=f"acc-ref-{i:06d}" if client else None,
                terms_accepted_version=None if rng.random() < 0.02 else "2021-06-21",
            )
        )
    return out


def generate(shape: ScenarioShape) -> Iterator[InputEvent]:
    """The stream in arrival order (which is not always business-time order)."""
    rng = random.Random(shape.seed)
    referrers = _referrers(rng, shape.referrers)
    # A few busy referrers reach the caps (R8).
    busy = referrers[: max(1, shape.referrers // 200)]
    pending: list[tuple[int, int, InputEvent]] = []
    serial = 0

    def emit(arrival: int, event: InputEvent) -> None:
        nonlocal serial
        serial += 1
        pending.append((arrival, serial, event))

    for n in range(shape.leads):
        lead_id = f"lead-{n:07d}"
        at = shape.start_ms + n * shape.lead_spacing_ms
        referrer = rng.choice(busy) if rng.random() < 0.05 else rng.choice(referrers)
        roll = rng.random()
        if roll < 0.03:
            email, org = f"contact@co{rng.randrange(max(1, n))}.example", None  # seen before (R2)
        elif roll < 0.05 and referrer.organization_id:
            email, org = f"colleague{n}@{referrer.email.split('@')[1]}", None  # R3
        elif roll < 0.10:
            email, org = f"person{n}@gmail.com", None
        else:
            email, org = f"contact@co{n}.example", (f"SIREN-{n}" if rng.random() < 0.5 else None)
        lead = LeadSubmitted(
            event_id=f"ev-{lead_id}-lead",
            occurred_at=at,
            lead_id=lead_id,
            referrer=referrer,
            referee=Referee(
                email=email,
                known_to_ringover=rng.random() < 0.03,
                organization_id=org,
                company_name=f"Company {n}",
            ),
        )
        # Out-of-order: some signatures or payments arrive before the lead.
        skew = -2 * shape.step_ms if rng.random() < 0.05 else 0
        emit(at, lead)
        if rng.random() < 0.01:  # R12: someone else submits the same lead
            other = rng.choice(referrers)
            emit(at + shape.step_ms, LeadSubmitted(
                event_id=f"ev-{lead_id}-dup", occurred_at=at + shape.step_ms, lead_id=lead_id,
                referrer=other, referee=lead.referee,
            ))  # fmt: skip
        if rng.random() < 0.02:
            emit(at + 2 * shape.step_ms, ReferralRefused(
                event_id=f"ev-{lead_id}-refused", occurred_at=at + 2 * shape.step_ms,
                lead_id=lead_id, note="refused in review",
            ))  # fmt: skip
        if rng.random() < 0.15:
            continue  # never signs
        account = f"acc-{lead_id}"
        signed_at = at + shape.step_ms * rng.randint(1, 8)
        months = 6 if rng.random() < 0.06 else rng.choice([12, 12, 24, 36])
        signature = ClientSigned(
            event_id=f"ev-{lead_id}-signed",
            occurred_at=signed_at,
            lead_id=lead_id,
            account_id=account,
            commitment_months=months,
        )
        emit(signed_at + skew, signature)
        if rng.random() < 0.10:
            continue  # never pays
        paid_at = signed_at + shape.step_ms * rng.randint(1, 8)
        for sequence in (1, 2):
            invoice = InvoicePaid(
                event_id=f"ev-{lead_id}-inv{sequence}",
                occurred_at=paid_at,
                account_id=account,
                invoice_id=f"INV-{n:07d}-{sequence}",
                invoice_sequence=sequence,
                amount_cents=rng.choice([2900, 4900, 12900, 25900]),
                currency="EUR",
            )
            emit(paid_at + skew, invoice)
            if rng.random() < 0.02:  # redelivery of the same event (R13)
                emit(paid_at + skew + MINUTE, invoice)
            paid_at += shape.invoice_interval_ms
    pending.sort(key=lambda item: (item[0], item[1]))
    for _, _, event in pending:
        yield event
