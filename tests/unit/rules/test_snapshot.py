"""State values are small, versioned and serialisable: a changelog can carry them."""

from __future__ import annotations

import pytest

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
    data = encode_state(RefereeState("id", "lead-1")).replace(b'"v":1', b'"v":99')
    with pytest.raises(StateVersionError, match="newer"):
        decode_state(RefereeState, data)
