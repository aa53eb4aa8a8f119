"""Time from the log (issue: live processor, item 3): clock records from the wall clock only
while the group is caught up, so a backlog is still judged in business time."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from streams.contracts import InputEvent, parse_time
from streams.kafka.topics import TopicSpec, ensure_topics
from tests.builders import DAY, T0, lead, paid, refused, signed, terms_toml
from tests.e2e.harness import INPUTS, WorkerProcess, produce, wait_for_outputs

pytestmark = pytest.mark.e2e

SHORT_HOLD = terms_toml(version="short-hold", payout="PT1M", hold="PT2S")


async def test_r10_a_backlog_is_judged_in_business_time_and_holds_expire_without_events(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A backlog from January waits for the worker: lead-1 refused one second into its hold
    must stay refused (the wall clock, months later, never overtakes the backlog), lead-2
    earned in January is granted as soon as the worker is caught up and writes clock
    records, and lead-3, paid just now, is granted two seconds later with no event after it."""
    tag = uuid.uuid4().hex[:8]
    app_id, prefix = f"wall-{tag}", f"wall-{tag}."
    terms = tmp_path / "terms.toml"
    terms.write_text(SHORT_HOLD)
    backlog: list[InputEvent] = [
        lead("lead-1", T0), signed("lead-1", T0 + DAY), paid("acc-lead-1", T0 + 2 * DAY),
        refused("lead-1", T0 + 2 * DAY + 1000),
        lead("lead-2", T0), signed("lead-2", T0 + DAY), paid("acc-lead-2", T0 + 2 * DAY),
    ]  # fmt: skip
    # The CRM's topics exist before the worker ever runs.
    await ensure_topics(kafka_bootstrap, [TopicSpec(prefix + name, 8) for name in INPUTS])
    await produce(kafka_bootstrap, prefix, backlog)
    worker = WorkerProcess(
        kafka_bootstrap, app_id, prefix, tmp_path / "w", terms,
        extra=["--clock", "wall", "--tick-interval", "0.5"],
    )  # fmt: skip
    worker.start()
    try:
        worker.wait_ready()
        outputs = await wait_for_outputs(kafka_bootstrap, prefix, {"reward-granted": 1})
        assert [r["lead_id"] for r in outputs["reward-granted"]] == ["lead-2"]
        refusals = [d for d in outputs["referral-decisions"] if d["lead_id"] == "lead-1"]
        assert refusals[-1]["reason"] == "refused_by_ringover"

        now = int(time.time() * 1000)
        await produce(
            kafka_bootstrap,
            prefix,
            [lead("lead-3", now), signed("lead-3", now + 1), paid("acc-lead-3", now + 2)],
        )
        outputs = await wait_for_outputs(kafka_bootstrap, prefix, {"reward-granted": 2}, 60)
        third = next(r for r in outputs["reward-granted"] if r["lead_id"] == "lead-3")
        paid_at = parse_time(third["first_invoice_paid_at"])
        assert parse_time(third["granted_at"]) == paid_at + 2000  # the hold, not the tick time
        _, metrics = worker.get("/metrics")
        ticks = [line for line in metrics.splitlines() if line.startswith("referral_clock_ticks")]
        assert ticks
        assert int(ticks[0].split()[-1]) > 0
    finally:
        worker.stop()
