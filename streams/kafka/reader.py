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
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
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
        if since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            ends_now = await consumer.end_offsets(tps)
            for tp in tps:
                hit = found.get(tp)
                starts[tp] = hit.offset if hit is not None else ends_now[tp]
                consumer.seek(tp, starts[tp])
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if starts[tp] < ends[tp]}
        if progress is not None:
            progress.start(sum(max(0, ends[tp] - starts[tp]) for tp in tps))
        for tp in tps:
            if tp not in pending:
                consumer.pause(tp)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        break
                    if until_ms is not None and message.timestamp > until_ms:
                        continue
                    yield RawRecord(
                        tp.topic,
                        tp.partition,
                        message.offset,
                        message.timestamp,
                        message.key,
                        message.value,
                    )
                if progress is not None and messages:
                    progress.advance(len(messages))
            for tp in list(pending):
                # Transaction markers take offsets too: the position, not the last record,
                # says when a partition is done.
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
