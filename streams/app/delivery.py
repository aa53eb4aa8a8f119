"""A round's outgoing records, sent as one Kafka batch per partition and acknowledged together.

Faust's `Topic.send` costs a future, a callback and a trip through its producer per record;
a round sends hundreds of records at once, so they go straight to the aiokafka producer as
record batches (`create_batch` / `send_batch`), grouped by partition in the order the rules
emitted them. The partition of a keyed record is the one Kafka's default partitioner gives
(murmur2), so journals stay co-partitioned with the tables their agents write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from aiokafka.partitioner import murmur2


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as Java clients do)."""
    return _hash(key) % partitions


@lru_cache(maxsize=1 << 16)
def _hash(key: bytes) -> int:
    # A lead's, a referrer's or an account's key is hashed for every record about it
    # (journals, decisions, views, changelogs): aiokafka's murmur2 is pure Python.
    hashed: int = murmur2(key)
    return hashed & 0x7FFFFFFF


class Outgoing(NamedTuple):
    """One record to produce: the topic's name, the key, the bytes (None: a table deletion),
    and a partition when the key does not choose it (clock records, keyless dead letters)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


def by_partition(
    records: Iterable[Outgoing], partitions: int
) -> dict[tuple[str, int], list[Outgoing]]:
    """The records grouped by destination partition, each group in emission order."""
    groups: dict[tuple[str, int], list[Outgoing]] = {}
    for record in records:
        partition = record.partition
        if partition is None:
            if record.key is None:
                raise ValueError(f"a record for {record.topic} with neither key nor partition")
            partition = partition_of(record.key, partitions)
        group = groups.get((record.topic, partition))
        if group is None:
            groups[(record.topic, partition)] = group = []
        group.append(record)
    return groups


Acks = list[tuple["asyncio.Future[Any]", int]]  # a send's futures, with their record counts


async def send_all(
    producer: Any, records: Iterable[Outgoing], partitions: int
) -> dict[tuple[str, int], int]:
    """Send every record through `producer` (an AIOKafkaProducer) and wait for the broker's
    acknowledgement of all of them; returns the last offset written per (topic, partition).
    Raises whatever the producer gave up with."""
    return await acknowledged(await send(producer, records, partitions))


async def send(producer: Any, records: Iterable[Outgoing], partitions: int) -> Acks:
    """Hand every record to `producer` (an AIOKafkaProducer), in order per partition, without
    waiting for the broker: what comes back is awaited by `acknowledged`. Records sent later
    through the same producer follow these on every partition they share."""
    acks: Acks = []
    for (topic, partition), group in by_partition(records, partitions).items():
        batch = None
        for record in group:
            if batch is None:
                batch = producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None) is not None:
                continue
            if batch.record_count():  # full: it goes, and the record starts the next one
                sent = await producer.send_batch(batch, topic, partition=partition)
                acks.append((sent, batch.record_count()))
                batch = producer.create_batch()
                if batch.append(key=record.key, value=record.value, timestamp=None) is not None:
                    continue
            # larger than a batch: it goes alone, after the records before it
            sent = await producer.send(topic, record.value, key=record.key, partition=partition)
            acks.append((sent, 1))
            batch = None
        if batch is not None and batch.record_count():
            sent = await producer.send_batch(batch, topic, partition=partition)
            acks.append((sent, batch.record_count()))
    return acks


async def acknowledged(acks: Acks) -> dict[tuple[str, int], int]:
    """Wait until the broker has acknowledged every record of a `send`; returns the last
    offset written per (topic, partition). Raises whatever the producer gave up with."""
    last: dict[tuple[str, int], int] = {}
    if acks:
        written = await asyncio.gather(*(ack for ack, _ in acks))
        for metadata, (_, count) in zip(written, acks, strict=True):
            if metadata is None:  # acks=0: the broker tells no offset
                continue
            where = (metadata.topic, metadata.partition)
            last[where] = max(last.get(where, -1), metadata.offset + count - 1)
    return last
