"""State values are small, versioned and serialisable: a changelog can carry them."""

from __future__ import annotations

import json

import pytest

from streams.rules.lead import lead_step
from streams.rules.model import AccountState, LeadState, RefereeState, ReferrerState
from streams.rules.snapshot import StateVersionError, decode_state, encode_state
from tests.builders import DAY, T0, lead, paid, signed
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


def test_state_from_a_newer_version_is_refused() -> None:
    data = encode_state(RefereeState("id", "lead-1")).replace(b'"v":2', b'"v":99')
    with pytest.raises(StateVersionError, match="newer"):
        decode_state(RefereeState, data)


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

    plain = json.loads(encode_state(state))
    plain["v"] = 1
    plain["seen"] = sorted(["e-lead", "e-dup", "e-sign", *plain.pop("duplicates")])
    upgraded = decode_state(LeadState, json.dumps(plain).encode())

    assert upgraded == state
    for event in events:
        assert lead_step(upgraded, event, engine.programme, T0 + DAY) == (upgraded, [])
