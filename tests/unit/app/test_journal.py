"""The journals' wire format (streams.app.journal): what audits replay (RULES.md R13). A
message is the compact UTF-8 JSON the standard encoder writes of its row, whatever the text;
every message reads back as itself, and journals written before rows still read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.app.journal import (
    MESSAGE_TYPES,
    VERSION,
    JournalError,
    decode_message,
    encode_message,
)
from streams.rows import layout, readable_after
from streams.rules.model import ClockTick, Displaced, GrantRequested, GrantSettled
from tests.builders import DAY, T0, journaled_before_rows, lead, paid, refused, signed
from tests.unit.rules.conftest import run


def _standard(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@given(st.text(), st.text(), st.text(), st.text())
def test_r13_journal_bytes_are_the_standard_compact_json(a: str, b: str, c: str, d: str) -> None:
    message = Displaced(lead_id=a, identity=b, by_lead_id=c, by_event_id=d)
    standard = _standard(["Displaced", VERSION, [a, b, c, d]])
    assert encode_message(message) == standard
    assert decode_message(standard) == message


@given(st.text(), st.text(), st.text(), st.text())
def test_r13_journals_written_before_rows_still_read(a: str, b: str, c: str, d: str) -> None:
    message = Displaced(lead_id=a, identity=b, by_lead_id=c, by_event_id=d)
    assert decode_message(journaled_before_rows(message)) == message


def test_r13_every_kind_of_message_a_run_journals_reads_back_in_both_forms() -> None:
    """Records inside records (a reward in a grant request, a decision in a settlement), enums,
    tuples and optional fields: the row and the object form give the same message."""
    inputs = [lead(), signed(), paid(), lead("lead-2", at=T0 + 1), refused("lead-2")]
    result = run(inputs, as_of=T0 + 40 * DAY)
    (reward,) = result.rewards
    rejected = next(d for d in result.decisions if d.reason is not None)
    for message in [
        *inputs,
        GrantRequested(reward=reward, max_rewards=50, max_total_cents=250_000),
        GrantSettled("lead-2", False, rejected),
        GrantSettled("lead-1", True),
        ClockTick(T0),
    ]:
        assert decode_message(encode_message(message)) == message
        assert decode_message(journaled_before_rows(message)) == message


@pytest.mark.parametrize(
    "data",
    [
        b'["Displaced",99,["a","b","c","d"]]',  # a newer worker's
        b'["Nothing",1,[]]',
        b'["Displaced",1,["a","b","c","d","e"]]',  # more values than fields
        b'["Displaced",1,{"lead_id":"a"}]',
        b'["Displaced",1]',
        b"[",
    ],
)
def test_r13_a_journal_record_this_worker_cannot_read_says_so(data: bytes) -> None:
    with pytest.raises(JournalError):
        decode_message(data)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_r13_clock_records_round_trip(at: int) -> None:
    assert decode_message(encode_message(ClockTick(at))) == ClockTick(at)


# The layout of every message's rows in the journals written at VERSION (streams.rows): a
# message whose fields change other than by one appended with a default needs a new VERSION
# (and this worker must go on reading the rows of this one).
ROW_LAYOUTS = {
    "LeadSubmitted": (
        "event_id",
        "occurred_at",
        "lead_id",
        (
            "referrer",
            (
                "referrer_id",
                "kind",
                "email",
                "reward_preference",
                "organization_id=",
                "account_id=",
                "terms_accepted_version=",
            ),
        ),
        ("referee", ("email", "known_to_ringover", "organization_id=", "company_name=")),
    ),
    "ClientSigned": ("event_id", "occurred_at", "lead_id", "account_id", "commitment_months"),
    "ReferralRefused": ("event_id", "occurred_at", "lead_id", "note="),
    "InvoicePaid": (
        "event_id",
        "occurred_at",
        "account_id",
        "invoice_id",
        "invoice_sequence",
        "amount_cents",
        "currency",
    ),
    "RefereeChecked": ("lead_id", "first"),
    "Displaced": ("lead_id", "identity", "by_lead_id", "by_event_id"),
    "FirstInvoicePaid": ("lead_id", "account_id", "invoice_id", "paid_at", "event_id"),
    "GrantSettled": (
        "lead_id",
        "granted",
        (
            "decision=",
            (
                "lead_id",
                "referrer_id",
                "status",
                "reason",
                "decided_at",
                "terms_version",
                "cause_event_id",
            ),
        ),
    ),
    "ClockTick": ("at",),
    "AccountOpened": ("account_id", "lead_id"),
    "RefereeClaim": ("identity", "lead_id", "occurred_at=", "event_id="),
    "FirstGranted": ("identity", "lead_id", "occurred_at", "event_id"),
    "GrantRequested": (
        (
            "reward",
            (
                "reward_id",
                "referrer_id",
                "lead_id",
                "referee_account_id",
                "amount_cents",
                "currency",
                "kind",
                "voucher_email",
                "referrer_account_id",
                "terms_version",
                "first_invoice_id",
                "first_invoice_paid_at",
                "granted_at",
                "due_by",
                "source_event_ids",
            ),
        ),
        "max_rewards",
        "max_total_cents",
    ),
}


def test_r13_every_journal_row_this_version_wrote_is_read_by_this_code() -> None:
    assert set(ROW_LAYOUTS) == set(MESSAGE_TYPES), "pin the row layout of every journaled type"
    for name, cls in MESSAGE_TYPES.items():
        why = readable_after(ROW_LAYOUTS[name], layout(cls))
        assert why is None, f"{name} rows of journal v{VERSION}: {why} (a new VERSION is due)"
