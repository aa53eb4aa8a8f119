"""Replay from Kafka against reading and decoding alone, on the same backlog.

    make bench-replay                         # 1,000,000 events on the local broker
    python -m benchmarks.replay_kafka --events 200000

Publishes a seeded backlog (streams.scenario) to fresh topics, then times, in wall-clock
seconds on the same machine in the same run: (a) a private aiokafka consumer reading every
input record and decoding it with fastavro (no rules), and (b) `replay --from-kafka` doing the
same reads, the rules, and writing the two output files. The two alternate --repeat times and
the best of each is kept (this machine's speed drifts by tens of percent within minutes).
Prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.app.delivery import Outgoing, partition_of, send_all
from streams.app.settings import Topics
from streams.app.topology import PRODUCER_BATCH_BYTES
from streams.audit.commands import replay_from_kafka
from streams.contracts import AvroCodec
from streams.kafka import broker
from streams.kafka.reader import read_topics
from streams.kafka.topics import TopicSpec, ensure_topics
from streams.rules import load_terms
from streams.scenario import ScenarioShape, generate

EVENTS_PER_LEAD = 3.45
PARTITIONS = 8  # of every input topic


Backlog = list[tuple[str, bytes, bytes]]  # (input contract, key, Avro value), in log order


def backlog(events: int) -> Backlog:
    """The seeded scenario's first `events` inputs, encoded: made before any clock starts."""
    codec = AvroCodec()
    shape = ScenarioShape(leads=int(events / EVENTS_PER_LEAD), referrers=20_000)
    return [(e.topic, e.key.encode(), codec.encode_record(e)) for e in generate(shape)]


def placed(topics: Topics, records: Backlog) -> list[Outgoing]:
    """The backlog as records for `topics`' inputs, each on the partition Kafka's default
    partitioner gives its key: placed, like the backlog is encoded, before any clock starts."""
    return [
        Outgoing(topics.name(contract), key, value, partition_of(key, PARTITIONS))
        for contract, key, value in records
    ]


async def publish(bootstrap: str, topics: Topics, records: list[Outgoing]) -> int:
    """Publish placed records to `topics`' inputs, as record batches: a publisher sending them
    one by one took a core for 1.5-2.5 s of a 100k drain, from the workers it was feeding."""
    await ensure_topics(bootstrap, [TopicSpec(name, PARTITIONS) for name in topics.inputs])
    return await send_chunks(bootstrap, [records])


async def send_chunks(bootstrap: str, chunks: Iterable[list[Outgoing]]) -> int:
    """Send each chunk of placed records as record batches (the worker's own `send_all`,
    at the worker's batch size), one chunk acknowledged before the next is made; returns
    how many were sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_batch_size=PRODUCER_BATCH_BYTES, acks=1
    )
    await producer.start()
    sent = 0
    try:
        for records in chunks:
            await send_all(producer, records, PARTITIONS)
            sent += len(records)
    finally:
        await producer.stop()
    return sent


async def read_and_decode(bootstrap: str, topics: Topics) -> int:
    codec = AvroCodec()
    contract_of = topics.inputs
    count = 0
    async for record in read_topics(bootstrap, list(contract_of)):
        codec.decode_record(contract_of[record.topic], record.value or b"")
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", default=os.environ.get("REFERRAL_BOOTSTRAP"))
    args = parser.parse_args()
    bootstrap = args.bootstrap or broker.up()[0]
    asyncio.run(run(bootstrap, args.events, args.repeat))


async def run(bootstrap: str, events: int, repeat: int) -> None:
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}.")
    start = time.perf_counter()
    count = await publish(bootstrap, topics, placed(topics, backlog(events)))
    print(f"published {count} events to {topics.prefix}* in {time.perf_counter() - start:.1f} s")

    decode_s = replay_s = float("inf")
    for attempt in range(1, repeat + 1):
        start = time.perf_counter()
        decoded = await read_and_decode(bootstrap, topics)
        decoding = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = await replay_from_kafka(
                bootstrap=bootstrap, topics=topics, app_id="unused", programme=load_terms(),
                journal=False, since_ms=None, as_of=None, out_dir=Path(out), to_topics=None,
                quiet=True,
            )  # fmt: skip
            replaying = time.perf_counter() - start
        decode_s, replay_s = min(decode_s, decoding), min(replay_s, replaying)
        print(
            f"  run {attempt}: read + decode {decoding:.1f} s, replay {replaying:.1f} s "
            f"(ratio {decoding / replaying:.2f})"
        )
    print(f"best of {repeat}, wall-clock seconds")
    print(f"read + decode only : {decode_s:7.1f} s  {decoded / decode_s:>9,.0f} events/s")
    print(f"replay --from-kafka: {replay_s:7.1f} s  {summary.events / replay_s:>9,.0f} events/s")
    print(f"replay speed / decode speed = {decode_s / replay_s:.2f} (target >= 0.5)")
    print(summary.line())


if __name__ == "__main__":
    main()
