"""What the journals say about the inputs they carry (the journal replay's summary line)."""

from __future__ import annotations

from streams.audit.sources import Journals
from streams.rules.model import AccountOpened, FirstInvoicePaid, Message, Route
from tests.builders import lead, paid, signed


def _forwarded(invoice_event_id: str, lead_id: str = "lead-1") -> FirstInvoicePaid:
    return FirstInvoicePaid(lead_id, "acc-lead-1", "inv-1", 0, invoice_event_id)


def test_r6_a_first_invoice_counts_once_whether_journaled_or_read_by_the_account_agent() -> None:
    """Ingest's inputs count as journaled; a first invoice the account agent read itself
    counts once it reached its lead, however often it was forwarded (a round redone after a
    kill); one the account journal also holds (an invoice on another partition, or an older
    worker's) is not counted twice."""
    direct, moved = paid(event_id="pay-direct"), paid("acc-2", event_id="pay-moved")
    lead_journal: list[Message] = [
        lead(),
        signed(),
        _forwarded(direct.event_id),
        _forwarded(direct.event_id),
        _forwarded(moved.event_id, "lead-2"),
    ]
    account_journal: list[Message] = [AccountOpened("acc-lead-1", "lead-1"), moved]
    journals = Journals(
        {
            Route.LEAD: {0: list(enumerate(lead_journal))},
            Route.ACCOUNT: {0: list(enumerate(account_journal))},
        }
    )
    assert journals.input_events == 4  # submission, signature, and the two invoices
