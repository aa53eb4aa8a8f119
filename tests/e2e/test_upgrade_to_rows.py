"""Upgrading to rows (streams.rows): a worker carries on from the changelogs and journals that
an earlier worker wrote as JSON objects, and the log gives the same reward (RULES.md R13)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.app.delivery import Outgoing, partition_of, send_all
from streams.app.journal import journal_topic
from streams.app.settings import Settings
from streams.app.topology import ReferralWorker
from streams.contracts import ClockAdvanced, JsonlCodec
from streams.kafka.connection import client_kwargs
from streams.kafka.topics import ensure_topics
from streams.rules import Engine, load_terms
from streams.rules.model import Route
from tests.builders import (
    DAY,
    T0,
    journaled_before_rows,
    lead,
    paid,
    signed,
    stored_before_rows,
    terms_toml,
)
from tests.e2e.harness import WorkerProcess, canonical, produce_in_steps, wait_for_outputs

pytestmark = pytest.mark.e2e
PARTITIONS = 8


async def test_r13_a_worker_carries_on_from_state_and_journals_written_before_rows(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """An earlier worker accepted the lead (its state and its referee's in the changelogs)
    and journaled its signature without applying it; the new worker restores the states,
    applies the signature from the journal, and the invoice earns the replay's reward."""
    terms = tmp_path / "terms.toml"
    terms.write_text(terms_toml())
    programme = load_terms(terms)
    tag = uuid.uuid4().hex[:8]
    app_id, prefix = f"rows-{tag}", f"rows-{tag}."
    lead_id = f"lead-{tag}"
    submitted, signature = lead(lead_id), signed(lead_id)
    later = [paid(f"acc-{lead_id}"), ClockAdvanced(T0 + 30 * DAY)]

    replay = Engine(programme)
    want = replay.run([submitted, signature, *later])
    rewards = [JsonlCodec().value(r) for r in want if r.topic == "reward-granted"]
    assert len(rewards) == 1
    earlier = Engine(programme)
    accepted = earlier.run([submitted])
    assert [d.status.value for d in accepted] == ["ACCEPTED"]

    def state_records(table: str, states: dict[str, Any]) -> list[Outgoing]:
        return [
            Outgoing(
                f"{app_id}-{table}-changelog",
                key.encode(),
                stored_before_rows(state),
                partition_of(key.encode(), PARTITIONS),
            )
            for key, state in states.items()
        ]

    left_behind = [
        *state_records("leads", earlier.leads),
        *state_records("referees", earlier.referees),
        Outgoing(
            journal_topic(app_id, Route.LEAD), lead_id.encode(), journaled_before_rows(signature)
        ),
    ]
    settings = Settings(bootstrap=kafka_bootstrap, app_id=app_id, topic_prefix=prefix)
    await ensure_topics(kafka_bootstrap, ReferralWorker(settings, programme).topic_specs())
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **client_kwargs())
    await producer.start()
    try:
        await send_all(producer, left_behind, PARTITIONS)
    finally:
        await producer.stop()

    worker = WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / "w", terms).start()
    try:
        worker.wait_ready()
        await produce_in_steps(kafka_bootstrap, app_id, prefix, later)
        found = await wait_for_outputs(kafka_bootstrap, prefix, {"reward-granted": 1})
        history = await lead_history(worker, lead_id, 3)
    finally:
        worker.stop()
    assert canonical(found["reward-granted"]) == canonical(rewards)
    replayed = [d.status.value for d in want if d.topic == "referral-decisions"]
    assert replayed[0] == "ACCEPTED"
    assert [d["status"] for d in found["referral-decisions"]] == replayed[1:]
    # the decisions the new worker made, in the query the leads agent keeps
    assert [d["status"] for d in history] == replayed[1:]


async def lead_history(worker: WorkerProcess, lead_id: str, count: int) -> list[Any]:
    """`/leads/{id}`'s decisions once it holds `count` (the history is stored with its round)."""
    decisions: list[Any] = []
    for _ in range(50):
        status, body = worker.get(f"/leads/{lead_id}")
        decisions = body.get("decisions", []) if status == 200 else []
        if len(decisions) >= count:
            break
        await asyncio.sleep(0.2)
    return decisions
