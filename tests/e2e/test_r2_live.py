"""R2 live: leads for one referee on different lead partitions, arriving in reverse business
order, give the business-time outcome; the live run equals the JSONL replay and passes
`audit --from-inputs`."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams.app.delivery import partition_of
from streams.contracts import ClockAdvanced, InputEvent, LeadSubmitted
from streams.replay import replay
from streams.rules import load_terms
from tests.builders import DAY, HOUR, T0, lead, paid, referee, referrer, signed, terms_toml
from tests.e2e.harness import (
    ROOT,
    WorkerProcess,
    canonical,
    ids_in_partition,
    produce,
    produce_in_steps,
    views_become,
    wait_for_outputs,
    wait_idle,
)

pytestmark = pytest.mark.e2e


def three_leads(tag: str) -> list[LeadSubmitted]:
    """Three leads for one referee, each on its own lead partition, latest-dated first."""
    ids = [ids_in_partition(f"{tag}-{p}", p, 1)[0] for p in (1, 4, 6)]
    assert len({partition_of(i.encode(), 8) for i in ids}) == 3
    same = referee(email=f"boss@{tag}.example", organization_id=None)
    return [
        lead(
            lead_id,
            T0 + (2 - n) * HOUR,  # the first produced is the latest in business time
            referrer_=referrer(
                referrer_id=f"ref-{lead_id}", email=f"r@{lead_id}.org", organization_id=lead_id
            ),
            referee_=same,
        )
        for n, lead_id in enumerate(ids)
    ]


def facts(leads: list[LeadSubmitted]) -> list[InputEvent]:
    return [
        e
        for submitted in leads
        for e in (
            signed(submitted.lead_id, T0 + DAY),
            paid(f"acc-{submitted.lead_id}", T0 + 2 * DAY),
        )
    ]


def expected(events: list[Any], terms: Path, out: Path) -> dict[str, list[dict[str, Any]]]:
    import json

    replay(events, load_terms(terms), out)
    return {
        topic: [
            json.loads(line)["value"] for line in (out / f"{topic}.jsonl").read_text().splitlines()
        ]
        for topic in ("reward-granted", "referral-decisions")
    }


def finals(decisions: list[dict[str, Any]]) -> dict[str, str]:
    last: dict[str, str] = {}
    for d in decisions:
        last[d["lead_id"]] = f"{d['status']}:{d['reason']}" if d["reason"] else d["status"]
    return last


async def test_r2_leads_arriving_in_reverse_business_order_live_equal_the_replay(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    terms = tmp_path / "terms.toml"
    terms.write_text(terms_toml())
    tag = uuid.uuid4().hex[:8]
    app_id, prefix = f"r2-{tag}", f"r2-{tag}."
    leads = three_leads(tag)
    events = [*leads, *facts(leads), ClockAdvanced(T0 + 30 * DAY)]
    want = expected(events, terms, tmp_path / "replay")
    earliest = leads[-1].lead_id
    assert finals(want["referral-decisions"]) == {
        leads[0].lead_id: "REJECTED:referee_already_known",
        leads[1].lead_id: "REJECTED:referee_already_known",
        earliest: "GRANTED",
    }
    worker = WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / "w", terms).start()
    try:
        worker.wait_ready()
        for submitted in leads:  # one at a time: each arrives after the later-dated ones
            await produce(kafka_bootstrap, prefix, [submitted])
            await wait_idle(kafka_bootstrap, app_id, prefix)
        # Each arrival displaced the one before it: only the earliest is still open, in its
        # referrer's view; the others left theirs.
        await views_become(
            worker,
            {
                **{f"ref-{submitted.lead_id}": [] for submitted in leads[:-1]},
                f"ref-{earliest}": [{"lead_id": earliest, "status": "ACCEPTED"}],
            },
        )
        await produce_in_steps(kafka_bootstrap, app_id, prefix, events[len(leads) :])
        found = await wait_for_outputs(
            kafka_bootstrap, prefix, {t: len(v) for t, v in want.items()}
        )
    finally:
        worker.stop()
    for topic, records in want.items():
        assert canonical(found[topic]) == canonical(records), topic
    audit = subprocess.run(
        [sys.executable, "-m", "streams", "audit", "--from-inputs", "--bootstrap", kafka_bootstrap,
         "--app-id", app_id, "--topic-prefix", prefix, "--terms", str(terms), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr


async def test_r2_a_backlog_in_reverse_business_order_gives_the_business_time_outcome(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """All at once: which claim reaches the referee first is up to the consumers; the outcome
    (each lead's last decision, the rewards) is the business-time one all the same. The clock
    record that ends the holds comes once the backlog is applied: a grant made before an
    earlier lead arrives would stand (a reward is never taken back)."""
    terms = tmp_path / "terms.toml"
    terms.write_text(terms_toml())
    tag = uuid.uuid4().hex[:8]
    app_id, prefix = f"r2b-{tag}", f"r2b-{tag}."
    leads = three_leads(tag)
    in_time = sorted(leads, key=lambda e: e.occurred_at)
    events = [*leads, *facts(leads), ClockAdvanced(T0 + 30 * DAY)]
    want = expected([*in_time, *events[len(leads) :]], terms, tmp_path / "replay")
    worker = WorkerProcess(kafka_bootstrap, app_id, prefix, tmp_path / "w", terms).start()
    try:
        worker.wait_ready()
        await produce(kafka_bootstrap, prefix, events[:-1])
        await wait_idle(kafka_bootstrap, app_id, prefix)
        await produce(kafka_bootstrap, prefix, events[-1:])
        found = await wait_for_outputs(kafka_bootstrap, prefix, {"reward-granted": 1})
    finally:
        worker.stop()
    assert finals(found["referral-decisions"]) == finals(want["referral-decisions"])
    assert canonical(found["reward-granted"]) == canonical(want["reward-granted"])
