"""R13 under SIGKILL at each point of an agent's round (streams.app.staging): the worker kills
itself (REFERRAL_FAULT), is restarted, and every reward is there, identical if repeated.

In the design before the batch rounds, the lead's new state could reach its changelog while
its messages to the other steps did not: the redelivered event found the state already
changed and sent nothing, and the reward was lost for good. Here the state is written only
once the outputs are acknowledged; the `stored` point kills the worker at the moment that
used to lose it (state flushed to the changelog, offsets not committed).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from streams.contracts import ClockAdvanced, InputEvent, RewardGranted
from streams.rules import Engine, load_terms
from tests.builders import DAY, T0, lead, paid, referee, referrer, signed, terms_toml
from tests.e2e.harness import WorkerProcess, produce, wait_for_outputs

pytestmark = pytest.mark.e2e


def story(leads: int = 3) -> list[InputEvent | ClockAdvanced]:
    """Leads of one referrer, each signed and paid; a clock record past their holds."""
    events: list[InputEvent | ClockAdvanced] = []
    for n in range(leads):
        lead_id = f"crash-{n}"
        events += [
            lead(
                lead_id,
                T0 + n,
                referrer_=referrer(referrer_id="ref-crash"),
                referee_=referee(email=f"boss@{lead_id}.example", organization_id=None),
            ),
            signed(lead_id, T0 + DAY + n),
            paid(f"acc-{lead_id}", T0 + 2 * DAY + n),
        ]
    events.append(ClockAdvanced(T0 + 30 * DAY))
    return events


def faulty_worker(
    bootstrap: str, folder: Path, prefix: str, fault: str, events: list[InputEvent | ClockAdvanced]
) -> tuple[list[RewardGranted], WorkerProcess]:
    """The rewards the core gives `events`, and a worker started with REFERRAL_FAULT=`fault`
    on the topics of `prefix` (its group named after them)."""
    terms = folder / "terms.toml"
    terms.write_text(terms_toml())
    expected = [o for o in Engine(load_terms(terms)).run(events) if isinstance(o, RewardGranted)]
    env = {"REFERRAL_FAULT": fault}
    worker = WorkerProcess(bootstrap, prefix.rstrip("."), prefix, folder / "data", terms, env=env)
    return expected, worker.start()


@pytest.mark.parametrize(
    ("agent", "point"),
    # The account agent applies invoices straight from billing's topic: its `stored` point
    # kills it with an invoice in the account's state and the invoice's offset not committed.
    [("account", "stored"), ("leads", "stored"), ("referrer", "stored"), ("referrer", "delivered")],
)
async def test_r13_a_worker_killed_inside_a_round_loses_no_reward(
    kafka_bootstrap: str, tmp_path: Path, unique: str, agent: str, point: str
) -> None:
    events = story()
    prefix = f"crash-{unique}."
    expected, worker = faulty_worker(
        kafka_bootstrap, tmp_path, prefix, f"{agent}:{point}:1", events
    )
    assert len(expected) == 3
    try:
        worker.wait_ready()
        await produce(kafka_bootstrap, prefix, events)
        status = await asyncio.to_thread(worker.wait_exit, 90)
        assert status == -signal.SIGKILL, worker.log_tail()
        assert "fault injection: SIGKILL" in worker.log_path.read_text()
        worker.env = {}
        worker.start().wait_ready()
        found = await wait_for_outputs(kafka_bootstrap, prefix, {"reward-granted": 3})
    finally:
        worker.stop()
    rewards: dict[str, list[dict[str, Any]]] = {}
    for reward in found["reward-granted"]:
        rewards.setdefault(reward["reward_id"], []).append(reward)
    assert sorted(rewards) == sorted(r.reward_id for r in expected)
    for copies in rewards.values():
        assert all(copy == copies[0] for copy in copies)  # a redelivery repeats, identically


async def rewards_under(
    bootstrap: str, folder: Path, prefix: str, fault: str
) -> tuple[list[str], list[str], str, str]:
    """24 leads' stories through a worker started with REFERRAL_FAULT=`fault` that is not
    killed: the reward ids the core gives, those it granted, its log and its metrics."""
    events = story(leads=24)
    expected, worker = faulty_worker(bootstrap, folder, prefix, fault, events)
    try:
        worker.wait_ready()
        await produce(bootstrap, prefix, events)
        found = await wait_for_outputs(bootstrap, prefix, {"reward-granted": len(expected)})
        _, metrics = worker.get("/metrics")
    finally:
        worker.stop()
    granted = [r["reward_id"] for r in found["reward-granted"]]
    return (
        sorted(r.reward_id for r in expected),
        sorted(granted),
        worker.log_path.read_text(),
        metrics,
    )


async def test_r13_a_partition_handed_over_past_the_group_offset_loses_no_reward(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """Faust can hand an agent a partition from past where the group stands: here the ingest
    agent's first batch of each input partition loses the records below offset 1. The
    continuity guard seeks each back (at its next record, or at the stall check where none
    comes) and every reward comes, once."""
    expected, granted, log, _ = await rewards_under(
        kafka_bootstrap, tmp_path, f"ahead-{unique}.", "ingest:ahead:1"
    )
    assert "offset 0 skipped" in log
    assert "was applied; seeking back to 0" in log
    assert granted == expected


async def test_r13_a_worker_whose_fetch_loop_ends_starts_it_again_and_loses_no_reward(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """faust-streaming's fetch loop ends for good when its task is cancelled outside a
    rebalance (a two-worker drain stalled so, its worker idle with the backlog waiting):
    here it is cancelled once the ingest agent has computed its first round. The worker's
    watchdog starts it again, and every reward comes, once."""
    expected, granted, log, metrics = await rewards_under(
        kafka_bootstrap, tmp_path, f"fetch-{unique}.", "ingest:fetch:1"
    )
    assert "fault injection: Faust's fetch loop cancelled (1)" in log
    assert "fetch loop has ended while the worker runs: starting it again" in log
    assert "referral_fetch_restarts_total 1" in metrics
    assert granted == expected
