"""Live speed (make bench-live): the worker draining a backlog, against the raw client.

In one run, on the local broker: a seeded backlog (streams.scenario) is published to fresh
input topics while one worker (`--clock events`, default terms) waits on them; the time runs
from the first record published to every input and journal record committed by the group
(after a smaller drain, not counted, that warms a broker just started). The same inputs are
then read and decoded by a plain aiokafka consumer (the ceiling), and a second copy of the
backlog is drained by two workers. Figures are printed and, with --json, written with the
machine they were measured on. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks import state
from benchmarks.replay_kafka import backlog, placed, publish, read_and_decode
from streams.app.pipeline import behind, offset_clients, pipeline_partitions
from streams.app.settings import Topics
from streams.faults.processes import WorkerProcess
from streams.kafka import broker
from streams.kafka.broker import KAFKA_VERSION
from streams.kafka.connection import client_kwargs
from streams.kafka.topics import (
    delete_app_topics,
    delete_topics_with_prefix,
    describe_partitions,
)

PARTITIONS = 8
WARM_UP = 20  # rewards before the latency is timed
WARM_UP_EVENTS = 20_000  # drained once before the timed drains (`run`)
# How often a drain asks whether the group has committed everything; the drain ends at the
# first check that found nothing left, confirmed by the next (checks once a second made the
# figure up to a second late: a twentieth of a 100k drain).
DRAIN_CHECK_S = 0.1
DRAIN_STALL_S = 120.0  # a drain whose records left have not dropped for this long fails


def profiler(pid: int, out: str) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `pid` (idle frames too: a waiting worker shows where it waits)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return None
    cmd = [spy, "record", "-p", str(pid), "-o", out, "-f", "raw", "--idle", "-r", "50"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def drain(
    bootstrap: str, events: int, workers: int, folder: Path, profile: str | None = None
) -> dict[str, Any]:
    """Publish a backlog to fresh topics while `workers` wait on them; time the drain."""
    tag = uuid.uuid4().hex[:8]
    app_id, topics = f"bench-live-{tag}", Topics(f"bench-live-{tag}.")
    terms = Path(__file__).parents[1] / "streams" / "rules" / "default_terms.toml"
    procs = [
        WorkerProcess(
            bootstrap, app_id, topics.prefix, folder / f"{tag}-{n}", terms, commit_interval=1.0
        )
        for n in range(workers)
    ]
    await asyncio.to_thread(broker.deletions_settled)  # the phase before's topics are gone
    others = await partitions_held(bootstrap)  # before the drain's own exist
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            await asyncio.to_thread(proc.wait_ready, 120)
        await settled(procs, topics.lead_submitted)
        spy = None
        if profile and procs[0].proc is not None:
            spy = profiler(procs[0].proc.pid, profile)
        records = placed(topics, backlog(events))  # made, encoded and placed beforehand
        pids = [proc.proc.pid for proc in procs if proc.proc is not None]
        cpu_before = sum(map(state.cpu_seconds, pids))
        broker_pid = broker.running_pid(broker.BrokerConfig.from_env())  # None: not the local one
        broker_before = state.cpu_seconds(broker_pid) if broker_pid else 0.0
        machine_before = state.machine_cpu()
        start = time.perf_counter()
        count = await publish(bootstrap, topics, records)
        published = time.perf_counter() - start
        tps = pipeline_partitions(topics, app_id, PARTITIONS)
        drained: float | None = None  # when a check first found nothing left, if the next agreed
        fewest, moved = float("inf"), time.perf_counter()  # the fewest records left, and when
        async with offset_clients(bootstrap) as (admin, consumer):
            while True:
                await asyncio.sleep(DRAIN_CHECK_S)
                left = await behind(admin, consumer, app_id, tps)
                remaining = sum(left.values())
                if remaining < fewest:
                    fewest, moved = remaining, time.perf_counter()
                elif time.perf_counter() - moved > DRAIN_STALL_S:
                    stuck = sorted(f"{tp.topic}[{tp.partition}]" for tp in left)
                    tails = "\n".join(proc.log_tail() for proc in procs)
                    raise RuntimeError(
                        f"drain stalled: {remaining} records left for {DRAIN_STALL_S:.0f} s "
                        f"on {', '.join(stuck)}; the workers' logs end:\n{tails}"
                    )
                if left:
                    drained = None
                elif drained is not None:
                    break
                else:
                    drained = time.perf_counter()
            seconds = drained - start
            cpu = sum(map(state.cpu_seconds, pids)) - cpu_before
            broker_cpu = state.cpu_seconds(broker_pid) - broker_before if broker_pid else None
            busy, stolen, spent = (
                b - a for a, b in zip(machine_before, state.machine_cpu(), strict=True)
            )
            # counted after the CPU figures: the count's own requests are not the drain's
            written = await records_written(admin, consumer, topics, app_id)
        peak = max(state.memory_mb(pid, "VmHWM") for pid in pids)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            await asyncio.to_thread(spy.wait, 60)
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.stop)
    return {
        "topics": topics,
        "app_id": app_id,
        "events": count,
        "publish_s": round(published, 1),
        "drain_s": round(seconds, 1),
        "events_per_s": round(count / seconds),
        # The workers' CPU (user + system, all threads) per event: the work itself, beside a
        # drain's time that the VM's phases (and the broker's share of two cores) also move.
        "cpu_us_per_event": round(cpu / count * 1e6),
        # The local broker's CPU over the same span, per event: on a machine it shares with the
        # workers, what two workers can gain over one is what the broker leaves them.
        "broker_cpu_us_per_event": None if broker_cpu is None else round(broker_cpu / count * 1e6),
        # Records the workers wrote per input event, by kind: the broker's work per event.
        "records_per_event": {kind: round(n / count, 2) for kind, n in written.items()},
        # The whole machine over the drain: how many cores were busy (workers, broker, the
        # publisher, anything else), and the share the hypervisor took.
        "cores_busy": round(busy / seconds, 2),
        "steal_share": round(stolen / spent, 3) if spent else 0.0,
        "peak_rss_mb": round(peak),
        # Partitions of other topics the broker held: its CPU per event grows with them
        # (docs/benchmarks.md, round 15), and the drain's time with it.
        "broker_other_partitions": others,
    }


async def partitions_held(bootstrap: str) -> int:
    """How many partitions the broker holds, Kafka's own internal topics (`__*`) aside."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if not name.startswith("__")]
    finally:
        await admin.close()
    return sum((await describe_partitions(bootstrap, names, settle_s=0)).values()) if names else 0


async def clear_scratch(bootstrap: str) -> list[str]:
    """Delete the scratch topics an interrupted run left (this benchmark's prefixes only):
    left there, they would slow every run after it. Two runs never share a broker at once
    (each would measure the other's load), so none of these belongs to a run going on."""
    return await delete_topics_with_prefix(bootstrap, "bench-live-", "bench-lat-")


async def records_written(
    admin: Any, consumer: AIOKafkaConsumer, topics: Topics, app_id: str
) -> dict[str, int]:
    """Records the workers wrote on a drain's topics by its end, by kind: the tables' changelogs,
    the topics between steps (journals, the referrer view), and the outputs."""
    names = [
        name
        for name in await admin.list_topics()
        if name.startswith((topics.prefix, f"{app_id}-"))
        and name not in topics.inputs
        and "__assignor" not in name  # Faust's own, not the workers' records
    ]
    tps = [TopicPartition(name, n) for name in names for n in range(PARTITIONS)]
    ends = await consumer.end_offsets(tps)
    written = {"changelogs": 0, "between steps": 0, "outputs": 0}
    for tp, end in ends.items():
        if tp.topic.endswith("-changelog"):
            written["changelogs"] += end
        elif tp.topic.startswith(topics.prefix):
            written["outputs"] += end
        else:
            written["between steps"] += end
    return written


async def settled(procs: list[WorkerProcess], topic: str, timeout: float = 90) -> None:
    """Wait until the workers own each partition of `topic` once between them, twice in a row
    a second apart: a worker answers /health before it has joined the group, and a backlog
    published while the group still forms is drained by fewer workers than asked for."""
    line = re.compile(rf'^referral_consumer_lag{{partition="(\d+)",topic="{re.escape(topic)}"}}')
    deadline, agreed = time.monotonic() + timeout, 0
    while agreed < 2:
        owned: list[int] = []
        for proc in procs:
            _, text = await asyncio.to_thread(proc.get, "/metrics")
            owned += [int(m[1]) for m in map(line.match, str(text).splitlines()) if m]
        agreed = agreed + 1 if sorted(owned) == list(range(PARTITIONS)) else 0
        if time.monotonic() > deadline:
            raise RuntimeError(f"the group never settled: {topic} owned as {sorted(owned)}")
        await asyncio.sleep(1)


async def run(
    bootstrap: str,
    events: int,
    two: bool,
    rewards: int,
    *,
    profile: str | None = None,
    warm_up: int = WARM_UP_EVENTS,
) -> dict[str, Any]:
    left = await clear_scratch(bootstrap)
    if left:
        print(f"deleted {len(left)} topics an interrupted run left", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as scratch:
        if rewards and not events:
            return {"latency": await latency(bootstrap, rewards, 200, Path(scratch))}
        result: dict[str, Any] = {}
        if warm_up:
            # A broker just started (as `make bench-live` may start it) runs its first drain
            # 20-25 % slower (its JVM compiling its hot paths): timed apart, not counted.
            warm = await drain(bootstrap, warm_up, 1, Path(scratch))
            await delete_app_topics(bootstrap, warm.pop("topics").prefix, warm.pop("app_id"))
            result["warm_up"] = warm
        one = await drain(bootstrap, events, 1, Path(scratch), profile)
        topics, app_id = one.pop("topics"), one.pop("app_id")
        start = time.perf_counter()
        decoded = await read_and_decode(bootstrap, topics)
        raw_s = time.perf_counter() - start
        await delete_app_topics(bootstrap, topics.prefix, app_id)
        raw = {
            "events": decoded,
            "seconds": round(raw_s, 1),
            "events_per_s": round(decoded / raw_s),
        }
        result.update(
            one_worker=one,
            raw_read_decode=raw,
            ratio=round(one["events_per_s"] / raw["events_per_s"], 4),
        )
        if two:
            pair = await drain(bootstrap, events, 2, Path(scratch))
            await delete_app_topics(bootstrap, pair.pop("topics").prefix, pair.pop("app_id"))
            result["two_workers"] = pair
            result["two_over_one"] = round(pair["events_per_s"] / one["events_per_s"], 2)
        if rewards:
            # Last: the drains have warmed the broker's JIT (on a broker just started, the
            # first minutes' p99 was 3-5 times a warm one's: the JVM's, not the worker's).
            result["latency"] = await latency(bootstrap, rewards, 200, Path(scratch))
    return result


async def latency(bootstrap: str, rewards: int, load_rate: int, folder: Path) -> dict[str, Any]:
    """Zero hold: produce a first invoice, wait for its reward-granted read_committed; p50/p99
    over `rewards` rewards, while a background stream of `load_rate` events/s runs."""
    from aiokafka import AIOKafkaProducer

    from streams.contracts import AvroCodec, ClientSigned, InvoicePaid, LeadSubmitted
    from streams.contracts.records import Referee, Referrer, ReferrerKind, RewardKind
    from streams.scenario import ScenarioShape, generate

    tag = uuid.uuid4().hex[:8]
    app_id, topics = f"bench-lat-{tag}", Topics(f"bench-lat-{tag}.")
    terms = folder / "zero-hold.toml"
    default = Path(__file__).parents[1] / "streams" / "rules" / "default_terms.toml"
    terms.write_text(default.read_text().replace('hold = "P14D"', 'hold = "PT0S"'))
    worker = WorkerProcess(bootstrap, app_id, topics.prefix, folder / f"lat-{tag}", terms)
    codec = AvroCodec()
    now = int(time.time() * 1000) - 3_600_000
    # the first rewards open the reward path (partitions met for the first time, the
    # referrers' table): timed apart, they are not part of the figures
    leads = [f"lat-{n:05d}" for n in range(WARM_UP + rewards)]
    timed = leads[WARM_UP:]

    def story(lead_id: str, n: int) -> list[Any]:
        referrer = Referrer(
            referrer_id=f"ref-{lead_id}", kind=ReferrerKind.CLIENT, email=f"r@{lead_id}.example",
            reward_preference=RewardKind.GIFT_VOUCHER, terms_accepted_version="2021-06-21",
        )  # fmt: skip
        referee = Referee(email=f"boss@client-{lead_id}.example", known_to_ringover=False)
        return [
            LeadSubmitted(f"{lead_id}-l", now + n, lead_id, referrer, referee),
            ClientSigned(f"{lead_id}-s", now + n, lead_id, f"acc-{lead_id}", 12),
        ]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=-1)
    consumer = AIOKafkaConsumer(
        topics.reward_granted,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await asyncio.to_thread(broker.deletions_settled)  # the phase before's topics are gone
    worker.start()
    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    try:
        await asyncio.to_thread(worker.wait_ready, 120)
        # until the worker owns its partitions (its topics then have their leaders): a story
        # produced before that met NotLeaderForPartition and was retried, filling the log
        await settled([worker], topics.lead_submitted)
        await producer.start()
        for n, lead_id in enumerate(leads):
            for event in story(lead_id, n):
                await producer.send(
                    topics.name(event.topic), codec.encode_record(event), key=lead_id.encode()
                )
        await producer.flush()
        await consumer.start()

        async def read() -> None:
            while len(seen) < len(leads):
                batch = await consumer.getmany(timeout_ms=200)
                at = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        reward = codec.decode_record("reward-granted", record.value or b"")
                        lead_id = reward.lead_id  # type: ignore[union-attr]
                        if lead_id in sent:  # not the background load's
                            seen.setdefault(lead_id, at)

        # The background load is made and encoded before it starts: this process times the
        # rewards, and its own pauses would count as the worker's. Building the scenario in
        # the loop held it 0.24 s, and the full collections over its events took 40-70 ms
        # each, several during a measure (a probe of callbacks over 20-40 ms, both processes).
        shape = ScenarioShape(leads=max(50, load_rate * 60), seed=11)
        background = [
            (topics.name(event.topic), codec.encode_record(event), event.key.encode())
            for event in generate(shape)
        ]

        async def load() -> None:
            for topic, value, key in background:
                await producer.send(topic, value, key=key)
                await asyncio.sleep(1 / load_rate)

        reader, loader = asyncio.create_task(read()), asyncio.create_task(load())
        await asyncio.sleep(5)  # the load runs before the measure starts
        # and the worker has taken in every story (signed leads), so that the first
        # invoices time the path of a caught-up worker, not its start
        await asyncio.wait_for(qualified(bootstrap, topics, set(leads)), timeout=300)
        gc.collect()
        gc.freeze()  # what exists now stays: out of the collector's passes while timing
        for n, lead_id in enumerate(leads):
            invoice = InvoicePaid(
                f"{lead_id}-i",
                now + rewards + n,
                f"acc-{lead_id}",
                f"inv-{lead_id}",
                1,
                2900,
                "EUR",
            )
            sent[lead_id] = time.perf_counter()
            await producer.send_and_wait(
                topics.invoice_paid, codec.encode_record(invoice), key=invoice.key.encode()
            )
            await asyncio.sleep(0.05)
        await asyncio.wait_for(reader, timeout=120)
        loader.cancel()
        hops = await hop_times(bootstrap, topics, app_id, set(timed))
    finally:
        gc.unfreeze()
        await consumer.stop()
        await producer.stop()
        await asyncio.to_thread(worker.stop)
        await delete_app_topics(bootstrap, topics.prefix, app_id)
    by_order = [(seen[lead] - sent[lead]) * 1000 for lead in timed if lead in seen]
    times = sorted(by_order)
    slowest = sorted(range(len(by_order)), key=by_order.__getitem__)[-5:]
    return {
        "rewards": len(times),
        "background_events_per_s": load_rate,
        "p50_ms": round(times[len(times) // 2], 1),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 1),
        "max_ms": round(times[-1], 1),
        "slowest": [(n, round(by_order[n])) for n in reversed(slowest)],  # (nth reward, ms)
        "hops_ms": hops,
    }


HOPS = ("account", "leads", "referrer")


async def hop_times(
    bootstrap: str, topics: Topics, app_id: str, leads: set[str]
) -> dict[str, dict[str, int]]:
    """Per agent on a reward's way, p50 / p90 / p99 of its hop in ms: from the create time of
    the record that brought a timed lead's message to the create time of the record its
    round sent on (invoice -> lead journal -> referrer journal -> reward)."""
    from streams.app.journal import decode_message, journal_topic
    from streams.app.packing import unpack
    from streams.contracts import AvroCodec, InvoicePaid, RewardGranted
    from streams.kafka.reader import read_topics
    from streams.rules.model import FirstInvoicePaid, GrantRequested, Route

    codec = AvroCodec()
    stamps: dict[str, dict[str, int]] = {}  # lead -> step -> create time (ms)

    def seen(lead_id: str, step: str, at: int) -> None:
        if lead_id in leads:
            stamps.setdefault(lead_id, {}).setdefault(step, at)

    journals = {journal_topic(app_id, route) for route in (Route.LEAD, Route.REFERRER)}
    names = [topics.invoice_paid, topics.reward_granted, *journals]
    async for record in read_topics(bootstrap, names):
        at = record.timestamp_ms
        if record.topic in journals:
            for _, value in unpack(record.key, record.value):
                message = decode_message(value or b"")
                if isinstance(message, FirstInvoicePaid):
                    seen(message.lead_id, "leads", at)
                elif isinstance(message, GrantRequested):
                    seen(message.reward.lead_id, "referrer", at)
            continue
        contract = "invoice-paid" if record.topic == topics.invoice_paid else "reward-granted"
        decoded = codec.decode_record(contract, record.value or b"")
        if isinstance(decoded, InvoicePaid):
            seen(decoded.account_id.removeprefix("acc-"), "account", at)
        elif isinstance(decoded, RewardGranted):
            seen(decoded.lead_id, "reward", at)
    steps = (*HOPS, "reward")
    whole = [times for times in stamps.values() if all(step in times for step in steps)]
    result = {}
    for hop, (start, end) in zip(HOPS, pairwise(steps), strict=True):
        took = sorted(times[end] - times[start] for times in whole)
        if took:
            result[hop] = {
                "p50": took[len(took) // 2],
                "p90": took[int(len(took) * 0.9)],
                "p99": took[int(len(took) * 0.99)],
            }
    return result


async def qualified(bootstrap: str, topics: Topics, leads: set[str]) -> None:
    """Wait until every lead in `leads` has its QUALIFIED decision."""
    from streams.contracts import AvroCodec, ReferralDecision
    from streams.contracts.records import DecisionStatus

    codec, waiting = AvroCodec(), set(leads)
    consumer = AIOKafkaConsumer(
        topics.decisions, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        while waiting:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    decision = codec.decode_record("referral-decisions", record.value or b"")
                    if (
                        isinstance(decision, ReferralDecision)
                        and decision.status is DecisionStatus.QUALIFIED
                    ):
                        waiting.discard(decision.lead_id)
    finally:
        await consumer.stop()


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("faust-streaming", "aiokafka", "fastavro", "rocksdict", "orjson"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "platform": platform.platform(),
        "libraries": versions,
        "bench_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def _machine(drain: dict[str, Any]) -> list[str]:
    lines = [
        f"             machine: {drain['cores_busy']} of {os.cpu_count()} cores busy, "
        f"{drain['steal_share']:.1%} stolen by the hypervisor"
    ]
    if drain.get("broker_cpu_us_per_event") is not None:
        lines.append(
            f"             broker : {drain['broker_cpu_us_per_event']} µs CPU per event, "
            f"{drain.get('broker_other_partitions', '?')} partitions of other topics held"
        )
    if drain.get("records_per_event"):
        kinds = drain["records_per_event"]
        each = ", ".join(f"{kind} {n}" for kind, n in kinds.items())
        lines.append(f"             written: {sum(kinds.values()):.2f} records per event ({each})")
    return lines


def report(result: dict[str, Any]) -> str:
    """The figures as the table's lines."""
    lines = []
    if "latency" in result:
        lat = result["latency"]
        lines.append(
            f"latency    : first invoice -> reward readable, p50 {lat['p50_ms']} ms, p99 "
            f"{lat['p99_ms']} ms, max {lat['max_ms']} ms over {lat['rewards']} rewards "
            f"(background {lat['background_events_per_s']} events/s)"
        )
        hops = ", ".join(
            f"{hop} {t['p50']}/{t['p90']}/{t['p99']}" for hop, t in lat.get("hops_ms", {}).items()
        )
        lines.append(f"  each hop  : p50/p90/p99 ms, record created to record created: {hops}")
    if "warm_up" in result:
        warm = result["warm_up"]
        lines.append(
            f"warm-up    : {warm['events']} events first, {warm['events_per_s']:,} events/s "
            "(the broker's first drain, not counted)"
        )
    if "one_worker" in result:
        one, raw = result["one_worker"], result["raw_read_decode"]
        rate, rss = one["events_per_s"], one["peak_rss_mb"]
        lines += [
            f"backlog of {one['events']} events (published in {one['publish_s']} s)",
            f"one worker : {one['drain_s']:7.1f} s {rate:>9,} events/s  peak RSS {rss} MB, "
            f"{one['cpu_us_per_event']} µs CPU per event",
            *_machine(one),
            f"raw client : {raw['seconds']:7.1f} s {raw['events_per_s']:>9,} events/s  "
            "(read + decode)",
            f"ratio      : {result['ratio']}",
        ]
    if "two_workers" in result:
        two = result["two_workers"]
        rate, times = two["events_per_s"], result["two_over_one"]
        lines.append(
            f"two workers: {two['drain_s']:7.1f} s {rate:>9,} events/s  ({times}x one), "
            f"{two['cpu_us_per_event']} µs CPU per event (both)"
        )
        lines += _machine(two)
    if "state" in result:
        lines.append(state.describe(result["state"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--one-only", action="store_true", help="skip the two-worker run")
    parser.add_argument(
        "--latency", type=int, default=1000, help="rewards timed for latency (0: none)"
    )
    parser.add_argument(
        "--state-leads",
        type=int,
        default=0,
        help="also measure the tables at this many leads (benchmarks.state; 0: not)",
    )
    parser.add_argument(
        "--warm-up",
        type=int,
        default=WARM_UP_EVENTS,
        help="events drained once before the timed drains, not counted (0: none)",
    )
    parser.add_argument("--json", default=None, help="write the figures and the machine here")
    parser.add_argument(
        "--profile", default=None, help="py-spy raw samples of the one-worker drain, to FILE"
    )
    args = parser.parse_args()
    bootstrap = broker.up()[0]
    result = asyncio.run(
        run(
            bootstrap,
            args.events,
            not args.one_only,
            args.latency,
            profile=args.profile,
            warm_up=args.warm_up,
        )
    )
    if args.state_leads:
        with tempfile.TemporaryDirectory(prefix="bench-state-") as scratch:
            result["state"] = asyncio.run(state.run(bootstrap, args.state_leads, Path(scratch)))
    result["machine"] = machine()
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
