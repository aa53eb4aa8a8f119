"""R13 for every step, as the worker's batch rounds rely on it (streams.app.staging).

A crash before a batch's state is stored leaves the state from before the batch: the batch
comes again and must give the very same outputs (billing dedupes identical records on
reward_id). A crash after leaves a state that includes the batch, and the outputs already
acknowledged: the redelivered messages must then change nothing and send nothing new that
could differ.
"""

from __future__ import annotations

from typing import Any

from streams.app.journal import encode_message
from streams.contracts.records import to_avro
from streams.rules import account_step, referee_step, referrer_step
from streams.rules.model import (
    AccountOpened,
    ClockTick,
    FirstGranted,
    FirstInvoicePaid,
    GrantRequested,
    LeadState,
    RefereeChecked,
    RefereeClaim,
    Send,
)
from streams.rules.shard import LeadShard
from tests.builders import DAY, HOUR, T0, lead, paid, signed
from tests.unit.rules.conftest import run, terms


def wire(emits: list[Any]) -> list[bytes | dict[str, Any]]:
    """What leaves the step, as it goes on the wire."""
    return [encode_message(e.message) if isinstance(e, Send) else to_avro(e) for e in emits]


def lead_batch() -> list[Any]:
    return [
        lead("lead-1", T0),
        RefereeChecked("lead-1", True),
        signed("lead-1", T0 + DAY),
        FirstInvoicePaid("lead-1", "acc-lead-1", "inv-1", T0 + 2 * DAY, "pay-1"),
        ClockTick(T0 + 20 * DAY),
    ]


def test_r13_a_lead_batch_recomputed_from_the_state_before_it_gives_the_same_outputs() -> None:
    programme = terms()
    batch = lead_batch()  # one set of records, delivered again

    def apply(leads: dict[str, LeadState], clock: int | None) -> tuple[list[Any], LeadShard]:
        shard = LeadShard(programme, leads, clock)
        shard.rebuild_timers()
        out: list[Any] = []
        for message in batch:
            out.extend(shard.handle(message))
        return wire(out), shard

    first, shard = apply({}, None)
    again, _ = apply({}, None)  # the crash left no state: the batch comes again
    assert again == first
    assert any(isinstance(x, bytes) and b"GrantRequested" in x for x in first)
    # stored, then redelivered from the committed offset: nothing more goes out
    stored = dict(shard.leads)
    redelivered, _ = apply(stored, shard.clock)
    assert not any(isinstance(x, bytes) and b"GrantRequested" in x for x in redelivered)
    assert not any(isinstance(x, dict) for x in redelivered)  # no decision again


def test_r13_account_referee_and_referrer_steps_recompute_and_dedupe() -> None:
    grant = run(
        [lead("lead-1"), signed("lead-1"), paid("acc-lead-1")], as_of=T0 + 20 * DAY
    ).rewards[0]
    batches: list[tuple[Any, list[Any]]] = [
        (
            account_step,
            [
                paid("acc-1", T0 + DAY),
                AccountOpened("acc-1", "lead-1"),
                paid("acc-1", T0 + 40 * DAY, sequence=2),
            ],
        ),
        (
            referee_step,
            [
                RefereeClaim("id-1", "lead-2", T0 + HOUR, "e2"),
                RefereeClaim("id-1", "lead-1", T0, "e1"),
                FirstGranted("id-1", "lead-1", T0, "e1"),
            ],
        ),
        (referrer_step, [GrantRequested(grant, 50, 250000), GrantRequested(grant, 50, 250000)]),
    ]
    for step, batch in batches:
        state, first = apply_batch(step, batch, None)
        assert apply_batch(step, batch, None) == (state, first), step.__name__  # the same records
        assert first, step.__name__
        after, _ = apply_batch(step, batch, state)
        assert after == state, step.__name__  # stored, redelivered: the state stays


def apply_batch(step: Any, batch: list[Any], state: Any) -> tuple[Any, list[Any]]:
    out: list[Any] = []
    for message in batch:
        state, emits = step(state, message)
        out.extend(emits)
    return state, wire(out)
