"""The local broker is a real Apache Kafka: transactions, consumer groups, partitions."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.kafka import broker
from streams.kafka.topics import (
    TopicLayoutError,
    TopicSpec,
    delete_app_topics,
    delete_topics_with_prefix,
    describe_partitions,
    ensure_topics,
)
from tests.conftest import broker_config

pytestmark = pytest.mark.integration


async def _read_all(bootstrap: str, topic: str, isolation: str, expect_end: int) -> list[bytes]:
    """Every value on partition 0 up to the log end, read with the given isolation level."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            values.extend(m.value for m in batch.get(tp, []) if m.value is not None)
            if await consumer.position(tp) >= expect_end:
                break
        return values
    finally:
        await consumer.stop()


async def test_transactions_commit_is_seen_and_abort_never_is(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"tx-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"t-{unique}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
            await producer.send_and_wait(topic, b"committed-2")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()

    committed = await _read_all(kafka_bootstrap, topic, "read_committed", end)
    uncommitted = await _read_all(kafka_bootstrap, topic, "read_uncommitted", end)
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    assert b"aborted" in uncommitted  # the aborted record is in the log, only hidden


async def test_consumer_group_resumes_after_committed_offsets(
    kafka_bootstrap: str, unique: str
) -> None:
    topic, group = f"grp-{unique}", f"g-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"m{i}".encode())
    finally:
        await producer.stop()

    async def consume(n: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            while len(got) < n:
                msg = await asyncio.wait_for(consumer.getone(), timeout=20)
                got.append(msg.value)
                if len(got) == n:
                    await consumer.commit()
            return got
        finally:
            await consumer.stop()

    first = await consume(4)
    second = await consume(6)
    assert first == [f"m{i}".encode() for i in range(4)]
    assert second == [f"m{i}".encode() for i in range(4, 10)]


async def test_topics_get_the_requested_partition_count(kafka_bootstrap: str, unique: str) -> None:
    specs = [TopicSpec(f"p3-{unique}", 3), TopicSpec(f"p8-{unique}", 8)]
    created = await ensure_topics(kafka_bootstrap, specs)
    assert sorted(created) == sorted(s.name for s in specs)
    counts = await describe_partitions(kafka_bootstrap, [s.name for s in specs])
    assert counts == {f"p3-{unique}": 3, f"p8-{unique}": 8}
    assert await ensure_topics(kafka_bootstrap, specs) == []  # idempotent


async def test_existing_topic_with_other_partition_count_is_refused(
    kafka_bootstrap: str, unique: str
) -> None:
    await ensure_topics(kafka_bootstrap, [TopicSpec(f"co-{unique}", 2)])
    with pytest.raises(TopicLayoutError, match=r"co-.* has 2 partitions, the topology needs 8"):
        await ensure_topics(kafka_bootstrap, [TopicSpec(f"co-{unique}", 8)])


async def test_a_scratch_runs_topics_are_deleted_and_no_other(
    kafka_bootstrap: str, unique: str
) -> None:
    """The benchmarks and the fault harness delete their own topics and Faust's for their app,
    and leave every other topic alone."""
    mine = [f"run-{unique}.lead-submitted", f"app-{unique}-leads-changelog"]
    other = f"app-{unique}x-leads-changelog"  # another app whose id starts like this one's
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 1) for name in [*mine, other]])
    deleted = await delete_app_topics(kafka_bootstrap, f"run-{unique}.", f"app-{unique}")
    assert deleted == sorted(mine)
    assert await describe_partitions(kafka_bootstrap, [other]) == {other: 1}


async def test_deleted_topics_leave_the_disk_within_seconds_and_the_wait_says_so(
    kafka_bootstrap: str, unique: str
) -> None:
    """A benchmark's next phase starts once the last one's partitions are gone from disk."""
    cfg = broker_config()
    name = f"gone-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 3)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for partition in range(3):
            await producer.send_and_wait(name, b"x", partition=partition)
    finally:
        await producer.stop()
    assert len(list(cfg.data_dir.glob(f"{name}-*"))) == 3
    await delete_topics_with_prefix(kafka_bootstrap, name)
    deadline = time.monotonic() + 10  # the controller's deletion reaches the log manager
    while time.monotonic() < deadline and not list(cfg.data_dir.glob(f"{name}-*-delete")):
        if not list(cfg.data_dir.glob(f"{name}-*")):
            break  # already removed: nothing left to wait for
        await asyncio.sleep(0.05)
    waited = await asyncio.to_thread(broker.deletions_settled, cfg, 30.0)
    assert not list(cfg.data_dir.glob(f"{name}-*"))
    assert 0 <= waited < 30


def test_broker_up_is_idempotent_and_survives_a_killed_run(kafka_bootstrap: str) -> None:
    """A second `up` says it runs; a kill -9 leaves a stale pid that the next `up` handles."""
    cfg = broker.BrokerConfig.from_env(int(os.environ.get("KAFKA_LIFECYCLE_PORT", "19192")))
    broker.down(cfg)
    try:
        _, started = broker.up(cfg, fresh=True)
        assert started
        assert broker.up(cfg) == (cfg.bootstrap, False)
        pid = broker.running_pid(cfg)
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        broker._wait_gone(pid, 10)
        assert cfg.pid_file.exists()  # stale: the killed run could not clean up
        _, started = broker.up(cfg)
        assert started
        assert broker.answers_metadata(cfg.bootstrap)
        assert broker.down(cfg)
        assert broker.running_pid(cfg) is None
        assert not broker.down(cfg)
        _, started = broker.up(cfg)  # start -> stop -> start
        assert started
    finally:
        broker.down(cfg)


def test_storage_formats_with_a_cluster_id_that_begins_with_a_dash(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One random id in 64 begins with `-`: the format command must read it as a value."""
    libs = broker.fetch_jars()  # the session broker fetched them; the scratch broker reuses them
    monkeypatch.setenv("REFERRAL_CACHE_DIR", str(tmp_path))
    cfg = broker.BrokerConfig(port=1, controller_port=2)  # never started: ports unused
    cfg.home.mkdir(parents=True)
    (cfg.home / "server.properties").write_text(broker._server_properties(cfg))
    cluster = "-" + broker.cluster_id()[1:]
    broker._format_storage(libs, cfg, cluster)
    meta = (cfg.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster}\n" in meta


def test_new_cluster_ids_never_begin_with_a_dash() -> None:
    ids = {broker.cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
