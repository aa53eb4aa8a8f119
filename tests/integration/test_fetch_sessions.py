"""A consumer fetching in sessions (streams.kafka.fetch_sessions) on the real broker reads
every record once and in order (R13): across the session's incremental requests, a seek
back, a paused partition, and a session the broker no longer knows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher

from streams.kafka.fetch_sessions import (
    FETCH_REQUESTS,
    SESSION_RESETS,
    FetchSession,
    SessionFetchRequest,
    install_fetch_sessions,
)
from streams.kafka.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

PER_PARTITION = 30


async def read(
    consumer: AIOKafkaConsumer, expected: int, rounds: int = 40
) -> dict[TopicPartition, list[bytes]]:
    """What the consumer reads until `expected` records came (or `rounds` fetches ended)."""
    got: dict[TopicPartition, list[bytes]] = defaultdict(list)
    for _ in range(rounds):
        fetched = await consumer.getmany(timeout_ms=250)
        for tp, records in fetched.items():
            got[tp].extend(record.value for record in records if record.value is not None)
        if sum(map(len, got.values())) >= expected:
            break
    return got


async def test_r13_a_consumer_in_fetch_sessions_reads_every_record_once(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for owner, name in ((Fetcher, "_get_actions_per_node"), (AIOKafkaClient, "send")):
        monkeypatch.setattr(owner, name, getattr(owner, name))  # restored after the test
    install_fetch_sessions()
    built: list[tuple[int, int]] = []  # (epoch, partitions named) of each request
    answers: list[int] = []  # the error code of each response
    build, answered = SessionFetchRequest.build, SessionFetchRequest.answered

    def counted_build(self: SessionFetchRequest, struct_class: Any) -> Any:
        struct = build(self, struct_class)
        built.append((struct.session_epoch, sum(len(parts) for _, parts in struct.topics)))
        return struct

    def counted_answer(self: SessionFetchRequest, response: Any) -> None:
        answers.append(response.error_code)
        answered(self, response)

    monkeypatch.setattr(SessionFetchRequest, "build", counted_build)
    monkeypatch.setattr(SessionFetchRequest, "answered", counted_answer)

    topics = [f"sessions-a-{unique}", f"sessions-b-{unique}"]
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 4, 1) for topic in topics])
    tps = [TopicPartition(topic, p) for topic in topics for p in range(4)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await producer.start()
    await consumer.start()
    sent: dict[TopicPartition, int] = defaultdict(int)

    async def produce(tp: TopicPartition, count: int) -> list[bytes]:
        values = [f"{tp.topic}/{tp.partition}/{sent[tp] + n}".encode() for n in range(count)]
        for value in values:
            await producer.send(tp.topic, value, partition=tp.partition)
        await producer.flush()
        sent[tp] += count
        return values

    incremental_before = FETCH_REQUESTS["incremental"]
    try:
        # One partition at a time, so most fetches find records on a few partitions only
        produced = {tp: await produce(tp, PER_PARTITION) for tp in tps}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        assert dict(await read(consumer, PER_PARTITION * len(tps))) == produced
        for tp in tps[:3]:
            more = await produce(tp, 5)
            assert dict(await read(consumer, 5)) == {tp: more}
        session: FetchSession = next(iter(consumer._fetcher._fetch_sessions.values()))
        assert session.session_id != 0
        incremental = [named for epoch, named in built if epoch > 0]
        assert incremental
        assert min(incremental) < len(tps)
        assert FETCH_REQUESTS["incremental"] - incremental_before == len(incremental)

        # A seek back: the partition is named again at its new offset, and read again
        first = tps[0]
        consumer.seek(first, 10)
        assert dict(await read(consumer, PER_PARTITION - 10 + 5)) == {
            first: produced[first][10:] + [f"{first.topic}/0/{n}".encode() for n in range(30, 35)]
        }

        # A paused partition is left out of the session, and comes back at its offset
        paused, other = tps[1], tps[6]
        consumer.pause(paused)
        later, meanwhile = await produce(paused, 4), await produce(other, 4)
        assert dict(await read(consumer, 8, rounds=6)) == {other: meanwhile}
        consumer.resume(paused)
        assert dict(await read(consumer, 4)) == {paused: later}

        # A session the broker does not know: an error, then a new session, nothing lost
        forgotten_id = session.session_id
        errors_before = SESSION_RESETS["error"]
        session.session_id = forgotten_id + 100_000
        last = tps[7]
        after = await produce(last, 6)
        assert dict(await read(consumer, 6)) == {last: after}
        assert any(answers)
        assert SESSION_RESETS["error"] > errors_before  # counted for /metrics
        assert session.session_id not in (0, forgotten_id + 100_000)
    finally:
        await consumer.stop()
        await producer.stop()
