"""A lead shard restarted from its leads' states alone fires the timers they were waiting on."""

from __future__ import annotations

import pytest

from streams.rules.model import ClockTick, GrantRequested, Send
from streams.rules.shard import LeadShard, pending_timers
from tests.builders import DAY, T0, lead, paid, signed
from tests.unit.rules.conftest import run, terms


def test_r10_a_restarted_shard_still_grants_when_the_hold_ends() -> None:
    """lead-1 earned at T0+2d (due T0+16d), lead-2 only accepted: after a restart the shard
    rebuilds its timers from the states and, told the clock passed T0+16d, asks for lead-1's
    grant and nothing for lead-2 (no programme end in these terms)."""
    programme = terms()
    before = run([lead("lead-1"), signed("lead-1"), paid("acc-lead-1"), lead("lead-2")])
    leads = dict(before.engine.leads)
    assert list(pending_timers(leads.items(), programme)) == [(T0 + 16 * DAY, "lead-1")]

    restarted = LeadShard(programme, leads, clock=before.engine.clock)
    assert restarted.rebuild_timers() == 1
    emits = restarted.handle(ClockTick(T0 + 20 * DAY))
    requests = [
        e.message for e in emits if isinstance(e, Send) and isinstance(e.message, GrantRequested)
    ]
    assert len(requests) == 1
    assert isinstance(requests[0], GrantRequested)
    assert requests[0].reward.lead_id == "lead-1"
    assert requests[0].reward.granted_at == T0 + 16 * DAY


def test_time_an_input_is_applied_at_the_clock_the_engine_moved_never_a_guessed_one() -> None:
    """The engine moves the clock itself, then applies an input at it: without a clock the
    shard refuses rather than guess a time."""
    shard = LeadShard(terms(), {})
    with pytest.raises(ValueError, match="advance_to first"):
        shard.apply_now(lead("lead-1"))
    shard.advance_to(T0)
    shard.apply_now(lead("lead-1"))
    assert shard.clock == T0
    assert shard.leads["lead-1"].submission is not None
