"""A round's records as Kafka batches (streams.app.delivery): every record sent once, in the
order the rules emitted it on its partition (RULES.md R13: a journal replays in that order),
on the partition Kafka's default partitioner gives its key."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as kafka_murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from streams.app.delivery import Outgoing, by_partition, murmur2, partition_of, send_all


class RecordingProducer:
    """The part of AIOKafkaProducer that send_all uses, with small batches, recording what
    would reach each partition in order."""

    def __init__(self, batch_bytes: int = 300) -> None:
        self.batch_bytes = batch_bytes
        self.sent: dict[tuple[str, int], list[bytes]] = {}
        self.requests = 0

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0)

    def _acked(self) -> asyncio.Future[Any]:
        self.requests += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        from aiokafka.record.default_records import DefaultRecordBatch

        buffer = batch._build()
        values = [record.value for record in DefaultRecordBatch(bytes(buffer))]
        self.sent.setdefault((topic, partition), []).extend(values)
        return self._acked()

    async def send(self, topic: str, value: bytes, *, key: bytes, partition: int) -> Any:
        self.sent.setdefault((topic, partition), []).append(value)
        return self._acked()


def test_r13_keys_go_where_kafkas_default_partitioner_puts_them() -> None:
    partitions = list(range(8))
    for key in (b"lead-1", b"ref-42", b"acc-0007", b"", "lead-é".encode()):
        assert partition_of(key, 8) == DefaultPartitioner()(key, partitions, partitions)
        assert by_partition([Outgoing("t", key, b"")], 8) == {
            ("t", partition_of(key, 8)): [Outgoing("t", key, b"")]
        }


def test_r13_murmur2_is_kafkas_for_keys_of_every_length_and_byte() -> None:
    """Four bytes a step gives what aiokafka's byte-by-byte copy of the Java code gives."""
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(length)) for length in range(70)]
    keys += [bytes([byte]) * 9 for byte in (0x00, 0x7F, 0x80, 0xFF)]
    keys += [f"lead-{n:07d}".encode() for n in range(2000)]
    for key in keys:
        assert murmur2(key) == kafka_murmur2(key) & 0xFFFFFFFF, key
        assert partition_of(key, 12) == (kafka_murmur2(key) & 0x7FFFFFFF) % 12


def test_r13_each_partition_keeps_the_order_the_rules_emitted() -> None:
    records = [
        Outgoing("journal", f"k{n % 5}".encode(), f"{n}".encode().ljust(40, b"."))
        for n in range(60)
    ]
    producer = RecordingProducer()
    asyncio.run(send_all(producer, records, 8))
    expected: dict[tuple[str, int], list[bytes]] = {}
    for record in records:
        assert record.key is not None
        expected.setdefault(("journal", partition_of(record.key, 8)), []).append(record.value)
    assert producer.sent == expected
    assert producer.requests > len(expected)  # small batches: the groups were split


def test_r13_a_record_larger_than_a_batch_goes_alone_in_its_place() -> None:
    big = b"x" * 1000
    records = [
        Outgoing("dead", None, b"before", 2),
        Outgoing("dead", None, big, 2),
        Outgoing("dead", None, b"after", 2),
    ]
    producer = RecordingProducer()
    asyncio.run(send_all(producer, records, 8))
    assert producer.sent == {("dead", 2): [b"before", big, b"after"]}


def test_r13_a_record_without_key_or_partition_is_refused() -> None:
    with pytest.raises(ValueError, match="neither key nor partition"):
        by_partition([Outgoing("dead", None, b"v")], 8)
