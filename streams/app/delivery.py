"""A round's outgoing records, sent as one Kafka batch per partition and acknowledged together.

Faust's `Topic.send` costs a future, a callback and a trip through its producer per record;
a round sends hundreds of records at once, so they go straight to the aiokafka producer as
record batches (`create_batch` / `send_batch`), grouped by partition in the order the rules
emitted them. The partition of a keyed record is the one Kafka's default partitioner gives
(murmur2), so journals stay co-partitioned with the tables their agents write.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Any, NamedTuple

_M = 0x5BD1E995  # murmur2's mixing constant
_MASK = 0xFFFFFFFF
# Hashes of the keys seen lately (a lead's, an account's, a referrer's key is hashed for every
# record about it); emptied when full rather than kept in LRU order, which costs more per
# record than the misses it saves.
_HASHES: dict[bytes, int] = {}
_HASHES_KEPT = 1 << 16


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit
    value: aiokafka's pure-Python one, four bytes a step instead of one."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for (word,) in struct.iter_unpack("<I", data[:whole]):
        k = (word * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as Java clients do)."""
    hashed = _HASHES.get(key)
    if hashed is None:
        hashed = _remember(key)
    return hashed % partitions


def _remember(key: bytes) -> int:
    if len(_HASHES) >= _HASHES_KEPT:
        _HASHES.clear()
    hashed = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return hashed


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
    hashes = _HASHES
    for record in records:
        partition = record.partition
        if partition is None:
            key = record.key
            if key is None:
                raise ValueError(f"a record for {record.topic} with neither key nor partition")
            hashed = hashes.get(key)  # partition_of, inline: this runs for every record
            partition = (_remember(key) if hashed is None else hashed) % partitions
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
