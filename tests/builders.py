"""Builders of valid events and records for tests: defaults everywhere, override what matters."""

from __future__ import annotations

import itertools
import json
from typing import Any

from streams.app.journal import VERSION
from streams.contracts import (
    ClientSigned,
    InvoicePaid,
    LeadSubmitted,
    Referee,
    ReferralDecision,
    ReferralRefused,
    Referrer,
    ReferrerKind,
    RewardGranted,
    RewardKind,
    parse_time,
)
from streams.contracts.records import ClockAdvanced, DeadLetter, DecisionStatus, RejectionReason
from streams.plain import to_plain
from streams.rules.snapshot import STATE_VERSIONS

DAY = 24 * 3600 * 1000
HOUR = 3600 * 1000
T0 = parse_time("2026-01-05T10:00:00Z")

_ids = itertools.count(1)


def eid(prefix: str = "e") -> str:
    return f"{prefix}-{next(_ids)}"


def referrer(**over: Any) -> Referrer:
    fields: dict[str, Any] = {
        "referrer_id": "ref-1",
        "kind": ReferrerKind.CLIENT,
        "email": "alice@acme.example",
        "reward_preference": RewardKind.INVOICE_REDUCTION,
        "organization_id": "FR-ACME",
        "account_id": "acc-acme",
        "terms_accepted_version": "2021-06-21",
    }
    fields.update(over)
    return Referrer(**fields)


def referee(**over: Any) -> Referee:
    fields: dict[str, Any] = {
        "email": "bob@newco.example",
        "known_to_ringover": False,
        "organization_id": None,
        "company_name": "NewCo",
    }
    fields.update(over)
    return Referee(**fields)


def lead(
    lead_id: str = "lead-1",
    at: int = T0,
    *,
    event_id: str | None = None,
    referrer_: Referrer | None = None,
    referee_: Referee | None = None,
    **referrer_over: Any,
) -> LeadSubmitted:
    return LeadSubmitted(
        event_id=event_id or eid("lead"),
        occurred_at=at,
        lead_id=lead_id,
        referrer=referrer_ or referrer(**referrer_over),
        referee=referee_ or referee(email=f"boss@{lead_id}.example"),
    )


def signed(
    lead_id: str = "lead-1",
    at: int = T0 + DAY,
    *,
    account_id: str | None = None,
    months: int = 12,
    event_id: str | None = None,
) -> ClientSigned:
    return ClientSigned(
        event_id=event_id or eid("sign"),
        occurred_at=at,
        lead_id=lead_id,
        account_id=account_id or f"acc-{lead_id}",
        commitment_months=months,
    )


def paid(
    account_id: str = "acc-lead-1",
    at: int = T0 + 2 * DAY,
    *,
    sequence: int = 1,
    invoice_id: str | None = None,
    event_id: str | None = None,
    amount_cents: int = 12900,
) -> InvoicePaid:
    return InvoicePaid(
        event_id=event_id or eid("pay"),
        occurred_at=at,
        account_id=account_id,
        invoice_id=invoice_id or f"inv-{account_id}-{sequence}",
        invoice_sequence=sequence,
        amount_cents=amount_cents,
        currency="EUR",
    )


def refused(
    lead_id: str = "lead-1", at: int = T0 + DAY, *, event_id: str | None = None
) -> ReferralRefused:
    return ReferralRefused(
        event_id=event_id or eid("refuse"), occurred_at=at, lead_id=lead_id, note="no reason"
    )


def sample_records() -> list[Any]:
    """One valid record of every topic, optional fields both set and unset."""
    return [
        lead(),
        lead(
            "lead-2",
            referrer_=referrer(
                organization_id=None,
                account_id=None,
                terms_accepted_version=None,
                reward_preference=RewardKind.GIFT_VOUCHER,
                kind=ReferrerKind.INDIVIDUAL,
            ),
            referee_=referee(organization_id="FR-123", company_name=None, known_to_ringover=True),
        ),
        signed(),
        paid(),
        refused(),
        ReferralRefused(event_id="r-x", occurred_at=T0, lead_id="lead-9", note=None),
        RewardGranted(
            reward_id="0b5c7d52-0000-5000-8000-000000000000",
            referrer_id="ref-1",
            lead_id="lead-1",
            referee_account_id="acc-lead-1",
            amount_cents=5000,
            currency="EUR",
            kind=RewardKind.GIFT_VOUCHER,
            voucher_email="alice@acme.example",
            referrer_account_id=None,
            terms_version="2021-06-21",
            first_invoice_id="inv-1",
            first_invoice_paid_at=T0,
            granted_at=T0 + 14 * DAY,
            due_by=T0 + 30 * DAY,
            source_event_ids=("a", "b", "c"),
        ),
        ReferralDecision(
            lead_id="lead-1",
            referrer_id="ref-1",
            status=DecisionStatus.REJECTED,
            reason=RejectionReason.SAME_ORGANIZATION,
            decided_at=T0,
            terms_version="2021-06-21",
            cause_event_id="e-1",
        ),
        ReferralDecision(
            lead_id="lead-1",
            referrer_id="ref-1",
            status=DecisionStatus.GRANTED,
            reason=None,
            decided_at=T0,
            terms_version=None,
            cause_event_id=None,
        ),
        ClockAdvanced(at=T0 + 3 * DAY),
        DeadLetter(
            source_topic="invoice-paid",
            source_partition=3,
            source_offset=42,
            key=b"acc-1",
            value=b"\x00\xff",
            error_class="CodecError",
            error_message="not Avro",
            dead_lettered_at=T0,
        ),
    ]


TERMS_TOML = """
[program]
starts_at = 2021-06-21T00:00:00Z
{ends_at}

[[terms]]
version = "{version}"
effective_from = 2021-06-21T00:00:00Z
reward_amount_cents = {amount}
currency = "EUR"
max_rewards = {max_rewards}
max_total_cents = {max_total}
min_commitment_months = 12
payout_window = "{payout}"
hold = "{hold}"
{extra}
"""


def terms_toml(
    *,
    version: str = "2021-06-21",
    ends_at: str | None = None,
    amount: int = 5000,
    max_rewards: int = 50,
    max_total: int = 250000,
    payout: str = "P30D",
    hold: str = "P14D",
    extra: str = "",
) -> str:
    """A terms file: the 2021-06-21 terms with the given changes."""
    return TERMS_TOML.format(
        version=version,
        ends_at=f"ends_at = {ends_at}" if ends_at else "",
        amount=amount,
        max_rewards=max_rewards,
        max_total=max_total,
        payout=payout,
        hold=hold,
        extra=extra,
    )


# -- what workers wrote before rows (round 9): JSON objects, compact UTF-8 -------------------


def _compact(value: Any, *, sort_keys: bool = False) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    ).encode()


def stored_before_rows(state: Any, version: int | None = None) -> bytes:
    """A table state as a changelog held it before rows: its fields and "v", its version."""
    written = STATE_VERSIONS[type(state)] if version is None else version
    return _compact({**to_plain(state), "v": written}, sort_keys=True)


def journaled_before_rows(message: Any) -> bytes:
    """A journal message as a journal held it before rows: its type, "v" and its fields."""
    return _compact({"type": type(message).__name__, "v": VERSION, "value": to_plain(message)})
