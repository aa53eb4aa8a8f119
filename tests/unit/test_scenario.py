"""The demo's and benchmarks' stream is realistic: every rejection case, redeliveries,
duplicate submissions and out-of-order arrivals, deterministic for a seed."""

from __future__ import annotations

from streams.contracts import ClientSigned, LeadSubmitted
from streams.contracts.records import RejectionReason
from streams.replay import ReplaySummary
from streams.rules import Engine, load_terms
from streams.scenario import ScenarioShape, generate

SHAPE = ScenarioShape(referrers=60, leads=1500, seed=3)


def test_the_stream_reaches_every_rejection_reason_but_the_programme_dates() -> None:
    events = list(generate(SHAPE))
    summary = ReplaySummary()
    for output in Engine(load_terms()).outputs(events, events[-1].occurred_at + 90 * 86_400_000):
        summary.count(output)
    dated = {RejectionReason.PROGRAM_NOT_STARTED.value, RejectionReason.PROGRAM_ENDED.value}
    assert set(summary.rejections) == {r.value for r in RejectionReason} - dated
    assert summary.rewards > 100


def test_the_stream_has_redeliveries_duplicates_and_out_of_order_arrivals() -> None:
    events = list(generate(SHAPE))
    ids = [e.event_id for e in events]
    assert len(ids) > len(set(ids))  # redeliveries (same event_id)
    leads = [e.lead_id for e in events if isinstance(e, LeadSubmitted)]
    assert len(leads) > len(set(leads))  # second submissions of a lead (R12)
    seen: set[str] = set()
    early = 0
    for event in events:
        if isinstance(event, LeadSubmitted):
            seen.add(event.lead_id)
        elif isinstance(event, ClientSigned) and event.lead_id not in seen:
            early += 1  # a signature before its lead (R6)
    assert early > 0


def test_the_same_seed_gives_the_same_stream() -> None:
    assert list(generate(SHAPE)) == list(generate(SHAPE))
