"""State values are small, versioned and serialisable: a changelog can carry them."""

from __future__ import annotations

import json

import pytest

from streams.plain import to_plain
from streams.rows import layout, readable_after
from streams.rules.lead import lead_step
from streams.rules.model import AccountState, LeadState, RefereeState, ReferrerState
from streams.rules.snapshot import (
    _ROW_UPGRADES,
    STATE_VERSIONS,
    StateVersionError,
    decode_state,
    encode_state,
)
from tests.builders import DAY, T0, lead, paid, signed, stored_before_rows
from tests.unit.rules.conftest import run


def test_every_state_of_a_run_round_trips_through_bytes() -> None:
    result = run(
        [lead(), signed(), paid(), lead("lead-2"), paid("acc-unknown")], as_of=T0 + 40 * DAY
    )
    engine = result.engine
    for cls, states in [
        (LeadState, engine.leads),
        (AccountState, engine.accounts),
        (RefereeState, engine.referees),
        (ReferrerState, engine.referrers),
    ]:
        assert states
        for state in states.values():
            data = encode_state(state)
            assert len(data) < 1024
            assert decode_state(cls, data) == state


def test_r13_states_written_before_rows_still_restore() -> None:
    """A changelog written by a worker before rows holds JSON objects tagged with "v"."""
    engine = run([lead(), signed(), paid()], as_of=T0 + 40 * DAY).engine
    tables = [engine.leads, engine.accounts, engine.referees, engine.referrers]
    for state in (state for table in tables for state in table.values()):
        assert decode_state(type(state), stored_before_rows(state)) == state


@pytest.mark.parametrize("form", ["row", "object"])
def test_state_from_a_newer_version_is_refused(form: str) -> None:
    state = RefereeState("id", "lead-1")
    if form == "object":
        data = stored_before_rows(state, version=99)
    else:
        data = encode_state(state).replace(b"[2,", b"[99,", 1)
    with pytest.raises(StateVersionError, match="newer"):
        decode_state(RefereeState, data)


# The layout of every state's rows, for each version rows were written in (streams.rows). An
# entry never changes once a worker has written it: a state whose fields change other than
# by one appended with a default gets a new version, its layout here, and a row upgrade.
ROW_LAYOUTS = {
    (LeadState, 3): (
        "lead_id",
        "status=",
        (
            "submission=",
            (
                "event_id",
                "occurred_at",
                "referrer_id",
                "terms_version",
                "reward_kind",
                "referrer_account_id",
                "voucher_email",
                "same_organization",
                "referee=",
            ),
        ),
        ("signature=", ("event_id", "occurred_at", "account_id", "commitment_months")),
        ("invoice=", ("event_id", "occurred_at", "invoice_id", "account_id")),
        ("refusal=", ("event_id", "occurred_at")),
        "due_at=",
        "duplicates=",
    ),
    (AccountState, 1): (
        "account_id",
        "lead_id=",
        ("first_invoice=", ("event_id", "occurred_at", "invoice_id", "account_id")),
    ),
    (RefereeState, 2): ("identity", "first_lead_id", "first_at=", "first_event_id=", "granted="),
    (ReferrerState, 1): ("referrer_id", "granted_count=", "granted_cents=", "granted=", "refused="),
}


def test_r13_every_state_row_ever_written_is_read_by_this_code() -> None:
    for cls, version in STATE_VERSIONS.items():
        assert (cls, version) in ROW_LAYOUTS, f"pin the row layout of {cls.__name__} v{version}"
        why = readable_after(ROW_LAYOUTS[cls, version], layout(cls))
        assert why is None, f"{cls.__name__} v{version} rows: {why} (a new version is due)"
    for cls, version in ROW_LAYOUTS:
        if version < STATE_VERSIONS[cls]:
            assert (cls, version) in _ROW_UPGRADES, f"no upgrade of {cls.__name__} v{version} rows"


def test_r13_a_v1_lead_state_upgrades_keeping_what_dedupes_its_redeliveries() -> None:
    """v1 kept every event id the lead had seen; v2 keeps the duplicate submissions' ids only.

    A lead submitted twice (the second rejected as duplicate_lead), then signed: its v1 record
    listed three ids; upgraded, the duplicate's id is kept and a redelivery of each of the three
    events still changes nothing.
    """
    events = [lead(event_id="e-lead"), lead(event_id="e-dup", at=T0 + 1), signed(event_id="e-sign")]
    engine = run(events).engine
    state = engine.leads["lead-1"]
    assert state.duplicates == frozenset({"e-dup"})

    plain = to_plain(state)  # v1 came before rows: a JSON object
    plain["v"] = 1
    plain["seen"] = sorted(["e-lead", "e-dup", "e-sign", *plain.pop("duplicates")])
    upgraded = decode_state(LeadState, json.dumps(plain).encode())

    assert upgraded == state
    for event in events:
        assert lead_step(upgraded, event, engine.programme, T0 + DAY) == (upgraded, [])
