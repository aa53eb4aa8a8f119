"""Bounded, private reads of whole topics for audits: no consumer group, nothing committed.

The end offsets are fixed when the read starts, so a read of a live topic terminates and a
rerun over the same log reads the same records.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from streams.kafka.connection import client_kwargs


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class ReadProgress:
    """A progress bar with events/s and ETA on stderr; silent with --quiet or without a TTY."""

    def __init__(self, description: str, *, quiet: bool = False) -> None:
        enabled = not quiet and sys.stderr.isatty()
        self._progress = (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            if enabled
            else None
        )
        self._description = description
        self._task: object = None

    def __enter__(self) -> ReadProgress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def start(self, total: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(self._description, total=total, rate="")

    def advance(self, count: int) -> None:
        if self._progress is not None and self._task is not None:
            task_id = self._task
            self._progress.update(task_id, advance=count)  # type: ignore[arg-type]
            speed = self._progress.tasks[0].speed
            if speed:
                self._progress.update(task_id, rate=f"{speed:,.0f} events/s")  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PartitionRecords:
    """What one fetch brought from one partition; `done` once the partition is read to its end."""

    topic: str
    partition: int
    records: list[RawRecord]
    done: bool


class TopicRead:
    """A bounded private read of whole topics (see the module): `async with` it, look at
    `partitions` (those with records to read) and `total`, then iterate `fetches()`."""

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        partition_fetch_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._topics = topics
        self._since_ms = since_ms
        self._until_ms = until_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=partition_fetch_bytes,
            fetch_max_bytes=32 * 1024 * 1024,
            **client_kwargs(),
        )
        self._ends: dict[TopicPartition, int] = {}
        self._pending: set[TopicPartition] = set()
        self.partitions: list[tuple[str, int]] = []
        self.total = 0

    async def __aenter__(self) -> TopicRead:
        consumer = self._consumer
        await consumer.start()
        try:
            await self._plan()
        except BaseException:
            await consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def _plan(self) -> None:
        consumer = self._consumer
        tps: list[TopicPartition] = []
        for topic in self._topics:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic)
            tps.extend(TopicPartition(topic, p) for p in sorted(partitions or ()))
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        starts = {tp: await consumer.position(tp) for tp in tps}
        if self._since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, self._since_ms))
            ends_now = await consumer.end_offsets(tps)
            for tp in tps:
                hit = found.get(tp)
                starts[tp] = hit.offset if hit is not None else ends_now[tp]
                consumer.seek(tp, starts[tp])
        ends = await consumer.end_offsets(tps)
        self._ends = {tp: ends[tp] for tp in tps if starts[tp] < ends[tp]}
        self._pending = set(self._ends)
        self.partitions = [(tp.topic, tp.partition) for tp in self._ends]
        self.total = sum(end - starts[tp] for tp, end in self._ends.items())
        for tp in tps:
            if tp not in self._ends:
                consumer.pause(tp)

    async def fetch(self, timeout_ms: int = 1000) -> list[PartitionRecords]:
        """What the consumer has fetched since the last call, waiting up to `timeout_ms` for
        something; partitions read to their end come with `done` (once)."""
        consumer, ends, until_ms = self._consumer, self._ends, self._until_ms
        pending = self._pending
        if not pending:
            return []
        batch = await consumer.getmany(*pending, timeout_ms=timeout_ms)
        fetched: dict[TopicPartition, list[RawRecord]] = {}
        for tp, messages in batch.items():
            end = ends[tp]
            fetched[tp] = [
                RawRecord(tp.topic, tp.partition, m.offset, m.timestamp, m.key, m.value)
                for m in messages
                if m.offset < end and (until_ms is None or m.timestamp <= until_ms)
            ]
        done = set()
        for tp in pending:
            # Transaction markers take offsets too: the position, not the last record, says
            # when a partition is done.
            if await consumer.position(tp) >= ends[tp]:
                done.add(tp)
                consumer.pause(tp)
        pending -= done
        for tp in done:
            fetched.setdefault(tp, [])
        return [
            PartitionRecords(tp.topic, tp.partition, records, tp in done)
            for tp, records in fetched.items()
        ]

    async def fetches(self) -> AsyncIterator[list[PartitionRecords]]:
        """The records of `partitions`, fetch by fetch, each partition in offset order."""
        while self._pending:
            yield await self.fetch()


async def read_topics(
    bootstrap: str,
    topics: list[str],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    progress: ReadProgress | None = None,
) -> AsyncIterator[RawRecord]:
    """Every committed record of `topics` (missing topics are skipped), partition by partition
    in offset order, from `since_ms` (Kafka timestamp) or the beginning, to the ends as they
    were when the read started; records after `until_ms` are left out."""
    async with TopicRead(bootstrap, topics, since_ms=since_ms, until_ms=until_ms) as read:
        if progress is not None:
            progress.start(read.total)
        async for fetched in read.fetches():
            for part in fetched:
                for record in part.records:
                    yield record
                if progress is not None and part.records:
                    progress.advance(len(part.records))
