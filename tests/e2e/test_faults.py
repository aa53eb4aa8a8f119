"""The fault harness, bounded (the long run is `make faults`): R13 under SIGKILL, a second
worker taking partitions over, the broker killed with SIGKILL and restarted, and hostile
records in every input topic, checked hop by hop against the project's own replays."""

from __future__ import annotations

import pytest

from streams.faults import FaultPlan, run_faults
from tests.conftest import broker_config

pytestmark = pytest.mark.e2e


async def test_r13_no_reward_lost_or_changed_when_workers_and_the_broker_are_killed(
    kafka_bootstrap: str,
) -> None:
    cfg = broker_config()  # restarted as the session started it, SASL_SSL listener included
    plan = FaultPlan(
        events=2500,
        kills=3,
        feed_seconds=25,
        broker_down_seconds=8,
        hostile_rounds=1,
        settle_timeout=300,
    )
    said: list[str] = []
    report = await run_faults(kafka_bootstrap, plan, broker_cfg=cfg, say=said.append)
    story = "\n".join([*said, *report.lines()])
    verdict = report.verdict
    assert report.kills >= 3, story
    assert report.broker_restarts == 1, story
    assert verdict.rewards_expected > 100, story
    assert not verdict.lost, story
    assert not verdict.hostile_not_dead_lettered, story
    assert verdict.records_in == verdict.records_decoded + verdict.hostile_sent, story
    assert report.ok, story
