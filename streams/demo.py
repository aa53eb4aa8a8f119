"""`referral-rewards demo`: publish a realistic stream and show the decisions as they come.

The stream is the seeded scenario (streams.scenario) rebased to now: thousands of referrers and
leads, every rejection case, duplicates and out-of-order arrivals, paced at `--rate` events a
second. Run the worker with the demo terms (a 20-second hold) to see rewards within a minute;
`referral-rewards run` does both.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from streams.app.settings import Topics
from streams.contracts import AvroCodec, CodecError, ReferralDecision, RewardGranted
from streams.kafka.connection import client_kwargs
from streams.scenario import ScenarioShape, generate

EVENTS_PER_LEAD = 3.5


def demo_terms_path() -> Path:
    return Path(str(resources.files("streams.rules").joinpath("demo_terms.toml")))


@dataclass(frozen=True)
class DemoOptions:
    bootstrap: str
    referrers: int = 2000
    leads: int = 10000
    rate: float = 50.0
    topic_prefix: str = ""
    seed: int = 7
    step_ms: int = 2000  # between a lead's events: a lead's story takes about half a minute


async def publish(options: DemoOptions, console: Console) -> int:
    """Publish the scenario, rebased to now and paced; returns how many events were sent."""
    topics = Topics(options.topic_prefix)
    start = int(time.time() * 1000)
    shape = ScenarioShape(
        referrers=options.referrers,
        leads=options.leads,
        start_ms=start,
        lead_spacing_ms=int(EVENTS_PER_LEAD * 1000 / options.rate),
        step_ms=options.step_ms,
        invoice_interval_ms=10 * options.step_ms,
        seed=options.seed,
    )
    by_contract = {contract: kafka_topic for kafka_topic, contract in topics.inputs.items()}
    codec = AvroCodec()
    producer = AIOKafkaProducer(
        bootstrap_servers=options.bootstrap, enable_idempotence=True, **client_kwargs()
    )
    await producer.start()
    sent = 0
    try:
        for event in generate(shape):
            wait_s = (event.occurred_at - int(time.time() * 1000)) / 1000
            if wait_s > 0:  # paced: an event is published when it happens
                await asyncio.sleep(wait_s)
            await producer.send(
                by_contract[event.topic], codec.encode_record(event), key=event.key.encode()
            )
            sent += 1
            if sent % 500 == 0:
                console.print(f"[dim]published {sent} events[/dim]")
    finally:
        await producer.stop()
    return sent


async def show(options: DemoOptions, console: Console, stop: asyncio.Event) -> Counter[str]:
    """Print rewards and rejections as the worker decides them, until `stop` is set."""
    topics = Topics(options.topic_prefix)
    codec = AvroCodec()
    consumer = AIOKafkaConsumer(
        topics.reward_granted,
        topics.decisions,
        bootstrap_servers=options.bootstrap,
        **client_kwargs(),
        isolation_level="read_committed",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    contract = (
                        "reward-granted"
                        if message.topic == topics.reward_granted
                        else "referral-decisions"
                    )
                    try:
                        record = codec.decode_record(contract, message.value)
                    except CodecError as exc:
                        console.print(f"[red]undecodable output: {exc}[/red]")
                        continue
                    _print(console, record, seen)
    finally:
        await consumer.stop()
    return seen


def _print(console: Console, record: object, seen: Counter[str]) -> None:
    if isinstance(record, RewardGranted):
        seen["rewards"] += 1
        how = "invoice reduction" if record.kind.value == "INVOICE_REDUCTION" else "gift voucher"
        console.print(
            f"[bold green]REWARD[/bold green] {record.referrer_id} earns "
            f"€{record.amount_cents / 100:.2f} ({how}) for {record.lead_id}"
        )
    elif isinstance(record, ReferralDecision):
        seen[record.status.value] += 1
        if record.reason is not None:
            seen[record.reason.value] += 1
            console.print(
                f"[yellow]REJECTED[/yellow] {record.lead_id} of {record.referrer_id}: "
                f"{record.reason.value}"
            )


async def run_demo(options: DemoOptions) -> None:
    console = Console(stderr=False)
    console.print(
        f"[bold]demo[/bold]: {options.leads} leads of {options.referrers} referrers at "
        f"{options.rate:g} events/s on {options.bootstrap}; Ctrl-C to stop"
    )
    stop = asyncio.Event()
    display = asyncio.create_task(show(options, console, stop))
    try:
        sent = await publish(options, console)
        console.print(f"[bold]all {sent} events published[/bold]; decisions keep coming")
        await display
    finally:
        stop.set()
        seen = await display
        console.print(f"seen: {dict(seen)}")
