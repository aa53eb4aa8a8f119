"""End-to-end harness: worker processes, a plain producer, and a read_committed reader that
decodes with the official Apache `avro` library (not the project's codec)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import avro.io
import avro.schema
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.app.delivery import partition_of
from streams.app.pipeline import behind, named, offset_clients, pipeline_partitions
from streams.app.settings import Topics
from streams.contracts import AvroCodec, Record, format_time
from streams.contracts.registry import default_registry
from streams.faults.processes import ROOT, WorkerProcess, free_port
from streams.kafka.connection import client_kwargs
from streams.kafka.reader import RawRecord, read_topics

__all__ = ["ROOT", "WorkerProcess", "free_port"]


def ids_in_partition(prefix: str, partition: int, count: int, partitions: int = 8) -> list[str]:
    """Lead ids that all hash to one partition: their journal order is their arrival order."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"{prefix}-{n}"
        if partition_of(candidate.encode(), partitions) == partition:
            found.append(candidate)
        n += 1
    return found


async def produce(
    bootstrap: str, prefix: str, records: Iterable[Record | tuple[str, bytes, bytes | None]]
) -> None:
    """Publish records in order with a plain idempotent aiokafka producer; a (topic, value, key)
    tuple is sent as raw bytes (hostile input)."""
    codec = AvroCodec()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, **client_kwargs()
    )
    await producer.start()
    try:
        for record in records:
            if isinstance(record, tuple):
                topic, value, key = record
                await producer.send_and_wait(prefix + topic, value, key=key)
            else:
                key = record.key.encode() if record.key else None
                await producer.send_and_wait(
                    prefix + record.topic, codec.encode_record(record), key=key
                )
    finally:
        await producer.stop()


INPUTS = ("lead-submitted", "client-signed", "invoice-paid", "referral-refused", "referral-clock")


async def wait_idle(
    bootstrap: str, app_id: str, prefix: str, partitions: int = 8, timeout: float = 90
) -> None:
    """Wait until the worker group has committed everything on its inputs and journals, twice
    in a row: nothing is in flight between the steps."""
    tps = pipeline_partitions(Topics(prefix), app_id, partitions)
    async with offset_clients(bootstrap) as (admin, consumer):
        deadline = time.monotonic() + timeout
        quiet = 0
        left: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline:
            try:
                left = await behind(admin, consumer, app_id, tps)
            except KafkaError:  # a fresh broker's coordinator may not be there yet
                await asyncio.sleep(0.5)
                continue
            quiet = quiet + 1 if not left else 0
            if quiet >= 2:
                return
            await asyncio.sleep(0.3)
    raise AssertionError(f"the worker group {app_id} never became idle; behind: {named(left)}")


async def produce_in_steps(
    bootstrap: str, app_id: str, prefix: str, records: Sequence[Record]
) -> None:
    """Produce the records of each business instant, then wait until the workers are idle.

    Live, an invoice reaches its lead through the account step while a refusal goes
    straight to the lead: records produced back to back can overtake each other. Stepping
    through business time makes arrival order business order, as the replay assumes.
    """
    batch: list[Record] = []
    for record in records:
        if batch and _instant(record) != _instant(batch[-1]):
            await produce(bootstrap, prefix, batch)
            await wait_idle(bootstrap, app_id, prefix)
            batch = []
        batch.append(record)
    if batch:
        await produce(bootstrap, prefix, batch)
        await wait_idle(bootstrap, app_id, prefix)


def _instant(record: Record) -> int:
    return int(getattr(record, "occurred_at", None) or getattr(record, "at", 0))


def _reference_schemas() -> dict[bytes, tuple[str, avro.schema.Schema]]:
    out = {}
    for topic in default_registry().topics:
        for version in default_registry().versions(topic):
            out[version.fingerprint_bytes] = (topic, avro.schema.parse(json.dumps(version.raw)))
    return out


_REFERENCE = _reference_schemas()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(round(value.astimezone(UTC).timestamp() * 1000))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value
    return value


def decode_with_official_avro(data: bytes) -> tuple[str, dict[str, Any]]:
    """(topic, value in the JSONL convention) of a single-object encoded record."""
    assert data[:2] == b"\xc3\x01", "not single-object encoding"
    topic, schema = _REFERENCE[data[2:10]]
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    return topic, _plain(datum)


async def read_topic(bootstrap: str, topic: str) -> list[RawRecord]:
    """Every committed record of a topic (read_committed), in partition then offset order."""
    records = [record async for record in read_topics(bootstrap, [topic])]
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def read_outputs(bootstrap: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Decoded reward-granted and referral-decisions values, by topic."""
    out: dict[str, list[dict[str, Any]]] = {}
    for topic in ("reward-granted", "referral-decisions"):
        messages = await read_topic(bootstrap, prefix + topic)
        out[topic] = [decode_with_official_avro(m.value)[1] for m in messages]
    return out


async def wait_for_outputs(
    bootstrap: str, prefix: str, expected: dict[str, int], timeout: float = 180
) -> dict[str, list[dict[str, Any]]]:
    """Poll until each output topic holds at least the expected count, then settle briefly so
    that a duplicate would show up too."""
    deadline = time.monotonic() + timeout
    outputs: dict[str, list[dict[str, Any]]] = {}
    while time.monotonic() < deadline:
        outputs = await read_outputs(bootstrap, prefix)
        if all(len(outputs[t]) >= n for t, n in expected.items()):
            await asyncio.sleep(3)
            return await read_outputs(bootstrap, prefix)
        await asyncio.sleep(1)
    counts = {t: len(v) for t, v in outputs.items()}
    raise AssertionError(f"outputs {counts} never reached {expected}")


def canonical(values: Iterable[dict[str, Any]]) -> list[str]:
    """Order-insensitive comparison form of output values."""
    return sorted(json.dumps(v, sort_keys=True) for v in values)


async def views_become(
    worker: WorkerProcess, open_leads: dict[str, list[dict[str, str]]], seconds: float = 10.0
) -> None:
    """Wait until `/referrers/{id}` lists exactly these open leads (lead id, status; sorted by
    lead id) for each referrer (the view is its own hop and is read as stored)."""
    views: dict[str, Any] = {}
    for _ in range(int(seconds / 0.2)):
        views = {r: worker.get(f"/referrers/{r}")[1].get("open_leads") for r in open_leads}
        if views == open_leads:
            return
        await asyncio.sleep(0.2)
    assert views == open_leads, {r: v for r, v in views.items() if v != open_leads[r]}
