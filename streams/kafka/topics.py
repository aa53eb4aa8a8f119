"""Topic administration: create what is missing, and refuse partition counts that do not fit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.kafka.connection import client_kwargs


class TopicLayoutError(RuntimeError):
    """An existing topic's partition count differs from what the topology needs."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic the project needs: its partition count, replication and settings."""

    name: str
    partitions: int
    replication: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


_UNKNOWN_TOPIC = 3


async def describe_partitions(
    bootstrap: str, names: Iterable[str], *, settle_s: float = 15.0, expect_all: bool = False
) -> dict[str, int]:
    """Partition counts of the named topics that exist (missing ones are left out).

    A topic created a moment ago can answer LEADER_NOT_AVAILABLE, or even "unknown" while the
    creation propagates; such answers are asked again until `settle_s` has passed (unknown ones
    only with `expect_all`), so "missing" means the broker does not know the topic.
    """
    wanted = sorted(set(names))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + settle_s
        while True:
            found: dict[str, int] = {}
            unsettled: list[str] = []
            for meta in await admin.describe_topics(wanted):
                code = meta.get("error_code", 0)
                if code == 0 and meta["partitions"]:
                    found[meta["topic"]] = len(meta["partitions"])
                elif code != _UNKNOWN_TOPIC or expect_all:
                    unsettled.append(meta["topic"])
            if not unsettled or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the missing topics; raise TopicLayoutError when an existing one has other counts.

    Returns the names it created.
    """
    specs = list(specs)
    existing = await describe_partitions(bootstrap, [s.name for s in specs])
    _refuse_wrong_counts(specs, existing)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        new = [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication,
                topic_configs=dict(s.config),
            )
            for s in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):
            # another worker may create one between our look and our create
            await admin.create_topics(new, timeout_ms=30000)
    finally:
        await admin.close()
    # Return only once every topic answers with its partitions, and re-check the counts:
    # a topic created concurrently by someone else may have other counts.
    await _check_counts(bootstrap, specs)
    return [s.name for s in missing]


async def _check_counts(bootstrap: str, specs: list[TopicSpec]) -> None:
    existing = await describe_partitions(bootstrap, [s.name for s in specs], expect_all=True)
    absent = [s.name for s in specs if s.name not in existing]
    if absent:
        raise TopicLayoutError(f"topics not visible after creation: {', '.join(absent)}")
    _refuse_wrong_counts(specs, existing)


def _refuse_wrong_counts(specs: list[TopicSpec], existing: Mapping[str, int]) -> None:
    wrong = [
        f"{s.name} has {existing[s.name]} partitions, the topology needs {s.partitions}"
        for s in specs
        if s.name in existing and existing[s.name] != s.partitions
    ]
    if wrong:
        raise TopicLayoutError(
            "co-partitioned topics must have the same partition count: " + "; ".join(wrong)
        )


async def delete_app_topics(bootstrap: str, topic_prefix: str, app_id: str) -> list[str]:
    """Delete a scratch run's topics: its own (`topic_prefix`) and the ones Faust names after
    the app (changelogs, the leader topic)."""
    return await delete_topics_with_prefix(bootstrap, topic_prefix, f"{app_id}-")


async def delete_topics_with_prefix(bootstrap: str, *prefixes: str) -> list[str]:
    """Delete every topic whose name starts with one of `prefixes` (scratch runs only)."""
    if not all(prefixes):
        raise ValueError("an empty prefix would name every topic")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=30000)
        return sorted(doomed)
    finally:
        await admin.close()
