"""The fault verifier's hops when invoices go straight to the account agent (no journal)."""

from __future__ import annotations

from streams.audit.sources import Journals
from streams.faults.verify import _inputs_not_applied, _messages_lost
from streams.rules.model import AccountOpened, FirstInvoicePaid, Message, Route
from tests.builders import lead, paid, signed
from tests.unit.rules.conftest import terms


def _journals(lead_journal: list[Message], account_journal: list[Message]) -> Journals:
    return Journals(
        {
            Route.LEAD: {0: list(enumerate(lead_journal))},
            Route.ACCOUNT: {0: list(enumerate(account_journal))},
        }
    )


def test_r6_an_invoice_is_the_account_steps_own_input_not_an_ingest_hop() -> None:
    """An invoice in no journal is not 'never applied' (the account agent reads it itself);
    a submission missing from the lead journal is."""
    submitted, signature, invoice = lead(), signed(), paid()
    journals = _journals([signature], [AccountOpened(invoice.account_id, "lead-1")])
    missing = _inputs_not_applied([submitted, signature, invoice], journals)
    assert missing == [f"lead-submitted {submitted.event_id}"]


def test_r6_the_first_invoice_the_account_step_read_must_reach_its_lead() -> None:
    """Recomputed from the account journal and the invoices: the account step forwarded the
    first invoice to lead-1, so a lead journal without it lost a message between steps."""
    signature, invoice = signed(), paid()
    opened = AccountOpened(invoice.account_id, "lead-1")
    entries = [lead(), signature, invoice]
    forwarded = FirstInvoicePaid(
        "lead-1", invoice.account_id, invoice.invoice_id, invoice.occurred_at, invoice.event_id
    )
    lost = _messages_lost(_journals([signature], [opened]), terms(), entries)
    assert "lead lead-1 FirstInvoicePaid" in lost
    lost = _messages_lost(_journals([signature, forwarded], [opened]), terms(), entries)
    assert not any("FirstInvoicePaid" in message for message in lost)
