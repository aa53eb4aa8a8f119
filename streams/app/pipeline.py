"""How far the worker group is behind on its pipeline: the input topics and the journals.

The worker asks before writing a wall-clock record (a clock record must not overtake an input
still on its way through a journal); the fault harness, the benchmarks and the end-to-end
tests ask to know when everything fed has been applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.app.journal import journal_topic
from streams.app.settings import Topics
from streams.kafka.connection import client_kwargs
from streams.rules.model import Route


def pipeline_partitions(topics: Topics, app_id: str, partitions: int) -> list[TopicPartition]:
    """Every partition of the inputs and of the app's journals."""
    names = [*topics.inputs, *(journal_topic(app_id, route) for route in Route)]
    return [TopicPartition(name, p) for name in names for p in range(partitions)]


async def behind(
    admin: Any, consumer: Any, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Records not yet committed by `group`, for each partition of `tps` that has some."""
    committed = await admin.list_consumer_group_offsets(group)
    ends = await consumer.end_offsets(tps)
    left = {}
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        if ends[tp] > done:
            left[tp] = ends[tp] - done
    return left


@asynccontextmanager
async def offset_clients(bootstrap: str) -> AsyncIterator[tuple[Any, Any]]:
    """An admin client and a group-less consumer, for `behind`, closed afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    await consumer.start()
    try:
        yield admin, consumer
    finally:
        await consumer.stop()
        await admin.close()


def named(lag: dict[TopicPartition, int]) -> dict[str, int]:
    """`topic[partition]: records` for messages."""
    return {f"{tp.topic}[{tp.partition}]": n for tp, n in sorted(lag.items())}
