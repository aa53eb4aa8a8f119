"""The account step (key account_id): joins billing's invoices to the lead that signed (R6).

A first invoice paid before the signature is known waits here; the signature's AccountOpened
releases it. Later invoices trigger nothing.
"""

from __future__ import annotations

from streams.contracts.records import InvoicePaid
from streams.rules.model import (
    AccountMessage,
    AccountOpened,
    AccountState,
    Emit,
    FirstInvoice,
    FirstInvoicePaid,
    Route,
    Send,
)

_TO_LEAD = Route.LEAD  # bound once: EnumType.__getattr__ is slow on 3.11


def triggers(invoice: InvoicePaid) -> bool:
    """Whether an invoice can trigger a reward: only the first one counts (R6)."""
    return invoice.invoice_sequence == 1


def account_step(
    state: AccountState | None, message: AccountMessage
) -> tuple[AccountState | None, list[Emit]]:
    """Apply one message to an account; forwards the first invoice once the lead is known.

    A message that changes nothing gets back the state it was given, none included: billing
    invoices every account of the company, and a later invoice leaves no state behind.
    """
    if type(message) is InvoicePaid:
        if not triggers(message):
            return state, []  # a later invoice (journals of earlier workers still hold them)
        if state is not None and state.first_invoice is not None:
            return state, []  # a second "first" invoice, or a redelivery
        invoice = FirstInvoice(
            message.event_id, message.occurred_at, message.invoice_id, message.account_id
        )
        if state is None:
            return AccountState(message.account_id, None, invoice), []  # waits for its lead
        account = state._replace(first_invoice=invoice)
    elif type(message) is AccountOpened:
        if state is not None and state.lead_id is not None:
            # One account, one lead: a later claim by another lead is ignored, and a
            # redelivered claim by the same lead has already been answered.
            return state, []
        if state is None:
            return AccountState(message.account_id, message.lead_id), []  # no invoice yet
        account = state._replace(lead_id=message.lead_id)
    else:
        raise TypeError(f"not an account message: {type(message).__name__}")
    if account.lead_id is None or account.first_invoice is None:
        return account, []
    invoice = account.first_invoice
    # lead_id, account_id, invoice_id, paid_at, event_id
    forward = FirstInvoicePaid(
        account.lead_id,
        account.account_id,
        invoice.invoice_id,
        invoice.occurred_at,
        invoice.event_id,
    )
    return account, [Send(_TO_LEAD, account.lead_id, forward)]
