"""Contract checks that a schema cannot express: ids, amounts, e-mails, plausible times."""

from __future__ import annotations

from typing import Any

from streams.contracts.errors import ContractError
from streams.contracts.records import (
    ClientSigned,
    ClockAdvanced,
    InvoicePaid,
    LeadSubmitted,
    ReferralDecision,
    ReferralRefused,
    RewardGranted,
)

EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_AHEAD_OF_KAFKA_MS = 24 * 3600 * 1000


def _id(value: str, field: str) -> None:
    if not value or not value.strip():
        raise ContractError("must be a non-empty id", field=field)


def _email(value: str, field: str) -> None:
    # Deliberately loose: one @, something before it, a dotted domain after it, no spaces.
    local, at, domain = value.partition("@")
    if (
        not at
        or not local
        or "@" in domain
        or "." not in domain.strip(".")
        or domain.startswith(".")
        or domain.endswith(".")
        or any(c.isspace() for c in value)
    ):
        # The value itself is personal data (R14): never echo it.
        raise ContractError("must be an e-mail address with one @ and a domain", field=field)


def _time(value: int, field: str, kafka_timestamp_ms: int | None) -> None:
    if value < EARLIEST_MS:
        raise ContractError(f"{value} ms is before 2000-01-01", field=field)
    if kafka_timestamp_ms is not None and value > kafka_timestamp_ms + MAX_AHEAD_OF_KAFKA_MS:
        raise ContractError(
            f"{value} ms is more than a day after the record's Kafka timestamp "
            f"{kafka_timestamp_ms}",
            field=field,
        )


def _at_least(value: int, minimum: int, field: str) -> None:
    if value < minimum:
        raise ContractError(f"must be >= {minimum}, got {value}", field=field)


def _currency(value: str, field: str) -> None:
    if len(value) != 3 or not value.isalpha() or not value.isupper():
        raise ContractError(f"must be an ISO-4217 code like EUR, got {value!r}", field=field)


def check_contract(record: Any, kafka_timestamp_ms: int | None = None) -> None:
    """Raise ContractError naming the first field that breaks the contract."""
    if isinstance(record, LeadSubmitted):
        _id(record.event_id, "event_id")
        _time(record.occurred_at, "occurred_at", kafka_timestamp_ms)
        _id(record.lead_id, "lead_id")
        _id(record.referrer.referrer_id, "referrer.referrer_id")
        _email(record.referrer.email, "referrer.email")
        _email(record.referee.email, "referee.email")
    elif isinstance(record, ClientSigned):
        _id(record.event_id, "event_id")
        _time(record.occurred_at, "occurred_at", kafka_timestamp_ms)
        _id(record.lead_id, "lead_id")
        _id(record.account_id, "account_id")
        _at_least(record.commitment_months, 1, "commitment_months")
    elif isinstance(record, InvoicePaid):
        _id(record.event_id, "event_id")
        _time(record.occurred_at, "occurred_at", kafka_timestamp_ms)
        _id(record.account_id, "account_id")
        _id(record.invoice_id, "invoice_id")
        _at_least(record.invoice_sequence, 1, "invoice_sequence")
        _at_least(record.amount_cents, 0, "amount_cents")
        _currency(record.currency, "currency")
    elif isinstance(record, ReferralRefused):
        _id(record.event_id, "event_id")
        _time(record.occurred_at, "occurred_at", kafka_timestamp_ms)
        _id(record.lead_id, "lead_id")
    elif isinstance(record, RewardGranted):
        for name in ("reward_id", "referrer_id", "lead_id", "referee_account_id"):
            _id(getattr(record, name), name)
        _at_least(record.amount_cents, 0, "amount_cents")
        _currency(record.currency, "currency")
        for name in ("first_invoice_paid_at", "granted_at", "due_by"):
            _time(getattr(record, name), name, None)
    elif isinstance(record, ClockAdvanced):
        _time(record.at, "at", kafka_timestamp_ms)
    elif isinstance(record, ReferralDecision):
        _id(record.lead_id, "lead_id")
        _id(record.referrer_id, "referrer_id")
        _time(record.decided_at, "decided_at", None)
