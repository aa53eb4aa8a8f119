"""Contract checks after decoding: ids, amounts, sequences, commitments, e-mails, times."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from streams.contracts import ContractError
from streams.contracts.validation import check_contract
from tests.builders import lead, paid, referee, referrer, refused, signed


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (replace(signed(), event_id=""), "event_id"),
        (replace(signed(), lead_id="  "), "lead_id"),
        (replace(signed(), account_id=""), "account_id"),
        (replace(signed(), commitment_months=0), "commitment_months"),
        (replace(paid(), amount_cents=-1), "amount_cents"),
        (replace(paid(), invoice_sequence=0), "invoice_sequence"),
        (replace(paid(), invoice_id=""), "invoice_id"),
        (replace(paid(), currency="eur"), "currency"),
        (replace(refused(), occurred_at=0), "occurred_at"),
        (lead(referrer_=referrer(email="alice")), "referrer.email"),
        (lead(referrer_=referrer(email="a@b@c.example")), "referrer.email"),
        (lead(referee_=referee(email="bob@nodomain")), "referee.email"),
        (lead(referee_=referee(email="@newco.example")), "referee.email"),
        (lead(referrer_=referrer(referrer_id="")), "referrer.referrer_id"),
    ],
)
def test_contract_violation_names_its_field(record: Any, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        check_contract(record)
    assert caught.value.field == field


def test_error_messages_never_echo_an_email_address() -> None:
    """R14: e-mail addresses stay out of errors, logs and dead-letter messages."""
    with pytest.raises(ContractError) as caught:
        check_contract(lead(referee_=referee(email="secret.person@nodomain")))
    assert "secret.person" not in str(caught.value)


def test_valid_records_pass() -> None:
    for record in (lead(), signed(), paid(), refused(), paid(amount_cents=0)):
        check_contract(record)
