"""Worker state at size (make bench-state): RSS, RocksDB on disk, restore and restart times.

The tables are filled the way a worker fills them, without waiting for a live worker to
accept a million leads: the pure core accepts N submissions (one referee each, 50 leads per
referrer), and each state it ends with is written to its table's changelog, in the partition
and the bytes the worker writes (leads, referees, lead-history, referrer-leads, lead clocks).
Then, on the local broker:

- restore: a worker with an empty data directory starts; it rebuilds RocksDB from the
  changelogs; the time runs from its start to the decision on a new lead (caught up: it
  reads the table and answers a new event);
- size: its resident memory then, and its data directory on disk;
- restart: kill -9, start again on the same data directory, the time to the decision on
  another new lead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.replay_kafka import send_chunks
from streams.app.delivery import Outgoing, partition_of
from streams.app.read_models import history_with, in_referrer_view, view_with
from streams.app.settings import Settings, Topics
from streams.app.topology import ReferralWorker
from streams.contracts import AvroCodec, JsonlCodec, LeadSubmitted, ReferralDecision
from streams.contracts.records import Referee, Referrer, ReferrerKind, RewardKind
from streams.faults.processes import WorkerProcess
from streams.kafka import broker
from streams.kafka.topics import delete_app_topics, ensure_topics
from streams.rules import load_terms
from streams.rules.engine import Engine
from streams.rules.snapshot import encode_state

PARTITIONS = 8
TERMS = Path(__file__).parents[1] / "streams" / "rules" / "default_terms.toml"
START_MS = 1_767_607_200_000  # 2026-01-05T10:00:00Z, inside the default terms
CHUNK_LEADS = 50_000  # leads whose states are made at once; a multiple of a referrer's 50


def submission(n: int, at: int, lead_id: str | None = None) -> LeadSubmitted:
    """The n-th lead: its own referee, its referrer shared by 50 leads."""
    referrer = Referrer(
        referrer_id=f"ref-{n // 50:06d}", kind=ReferrerKind.CLIENT,
        email=f"owner@ref{n // 50}.example", reward_preference=RewardKind.GIFT_VOUCHER,
        terms_accepted_version="2021-06-21",
    )  # fmt: skip
    referee = Referee(email=f"boss@lead{n}.example", known_to_ringover=False)
    lead_id = lead_id or f"state-{n:07d}"
    return LeadSubmitted(f"ev-{lead_id}", at, lead_id, referrer, referee)


def changelog_chunks(app_id: str, leads: int) -> Iterator[list[Outgoing]]:
    """The tables' contents after `leads` accepted submissions, as changelog records, a chunk
    of leads at a time: the core's states for a million leads held at once took the bench
    process to 13.8 GB."""
    for first in range(0, leads, CHUNK_LEADS):
        yield _changelog_records(app_id, range(first, min(first + CHUNK_LEADS, leads)))
    clock = str(START_MS + leads).encode()
    yield [
        Outgoing(f"{app_id}-lead-clocks-changelog", str(p).encode(), clock, p)
        for p in range(PARTITIONS)
    ]


def _changelog_records(app_id: str, leads: range) -> list[Outgoing]:
    """The states the core ends with after these submissions (their referrers' every lead
    among them), as changelog records."""
    engine, jsonl = Engine(load_terms(TERMS)), JsonlCodec()
    histories: dict[str, bytes] = {}
    open_leads: dict[str, bytes] = {}
    for n in leads:
        for output in engine.apply(submission(n, START_MS + n)):
            if not isinstance(output, ReferralDecision):
                continue
            history = history_with(histories.get(output.lead_id), jsonl.value(output))
            if history is not None:
                histories[output.lead_id] = history
            if in_referrer_view(output):
                referrer = output.referrer_id
                status = output.status.value
                open_leads[referrer] = view_with(open_leads.get(referrer), output.lead_id, status)

    def table(name: str, rows: Any) -> list[Outgoing]:
        topic = f"{app_id}-{name}-changelog"
        return [
            Outgoing(topic, key.encode(), value, partition_of(key.encode(), PARTITIONS))
            for key, value in rows
        ]

    return [
        *table("leads", ((k, encode_state(s)) for k, s in engine.leads.items())),
        *table("referees", ((k, encode_state(s)) for k, s in engine.referees.items())),
        *table("lead-history", histories.items()),
        *table("referrer-leads", open_leads.items()),
    ]


async def fill(bootstrap: str, app_id: str, topics: Topics, leads: int) -> int:
    settings = Settings(bootstrap=bootstrap, app_id=app_id, topic_prefix=topics.prefix)
    await ensure_topics(bootstrap, ReferralWorker(settings, load_terms(TERMS)).topic_specs())
    return await send_chunks(bootstrap, changelog_chunks(app_id, leads))


async def decided(bootstrap: str, topics: Topics, lead_id: str, timeout: float) -> float:
    """Publish a new lead; the seconds until its decision is readable."""
    codec = AvroCodec()
    consumer = AIOKafkaConsumer(
        topics.decisions, bootstrap_servers=bootstrap, auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)  # pin "latest" before the lead is sent
        event = submission(10**7, START_MS + 10**8, lead_id)
        start = time.perf_counter()
        await producer.send_and_wait(
            topics.lead_submitted, codec.encode_record(event), key=lead_id.encode()
        )
        deadline = start + timeout
        while time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == lead_id.encode():
                        return time.perf_counter() - start
        raise TimeoutError(f"no decision for {lead_id} after {timeout} s")
    finally:
        await producer.stop()
        await consumer.stop()


def disk_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/PID/status in MB (VmRSS: resident now; VmHWM: its peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, all threads (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float, float]:
    """(busy, stolen, all) CPU seconds of the whole machine so far, every core (/proc/stat):
    busy is user, nice, system and interrupts; stolen, the hypervisor's (a VM's slow phases)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / tick, steal / tick, (busy + idle + iowait + steal) / tick


async def run(bootstrap: str, leads: int, folder: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    app_id, topics = f"bench-state-{tag}", Topics(f"bench-state-{tag}.")
    await asyncio.to_thread(broker.deletions_settled)  # the phase before's topics are gone
    start = time.perf_counter()
    records = await fill(bootstrap, app_id, topics, leads)
    filled = time.perf_counter() - start
    worker = WorkerProcess(bootstrap, app_id, topics.prefix, folder / tag, TERMS)
    timeout = 1800.0
    try:
        start = time.perf_counter()
        worker.start()
        await asyncio.to_thread(worker.wait_ready, timeout)
        await decided(bootstrap, topics, f"probe-{tag}-1", timeout)
        restore = time.perf_counter() - start
        assert worker.proc is not None
        rss, disk = memory_mb(worker.proc.pid), disk_mb(folder / tag)
        worker.kill()
        start = time.perf_counter()
        worker.start()
        await asyncio.to_thread(worker.wait_ready, timeout)
        await decided(bootstrap, topics, f"probe-{tag}-2", timeout)
        restart = time.perf_counter() - start
        rss_after = memory_mb(worker.proc.pid)
    finally:
        worker.stop()
        await delete_app_topics(bootstrap, topics.prefix, app_id)
    return {
        "leads": leads,
        "changelog_records": records,
        "fill_s": round(filled, 1),
        "restore_s": round(restore, 1),
        "rss_mb": round(rss),
        "rocksdb_mb": round(disk),
        "restart_after_kill_s": round(restart, 1),
        "rss_after_restart_mb": round(rss_after),
    }


def describe(result: dict[str, Any]) -> str:
    return (
        f"state      : {result['leads']:,} leads ({result['changelog_records']:,} changelog "
        f"records, written in {result['fill_s']} s)\n"
        f"  restore  : {result['restore_s']} s from an empty data directory to a new lead "
        f"decided; RSS {result['rss_mb']} MB, RocksDB {result['rocksdb_mb']} MB on disk\n"
        f"  restart  : {result['restart_after_kill_s']} s from kill -9 to a new lead decided; "
        f"RSS {result['rss_after_restart_mb']} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    bootstrap = broker.up()[0]
    with tempfile.TemporaryDirectory(prefix="bench-state-") as scratch:
        result = asyncio.run(run(bootstrap, args.leads, Path(scratch)))
    print(describe(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
