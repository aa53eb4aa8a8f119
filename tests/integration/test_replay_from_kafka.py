"""RULES.md, Time (the same log gives the same outputs): `replay --from-kafka` reads its log in
a second process while the rules run, on the real broker. Its files are those of the JSONL
replay of the log in Kafka-timestamp order, whether the partitions' timestamps go forward
(the log is handed over head first) or go back (the replay starts over on the whole log)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.app.settings import Topics
from streams.audit.commands import replay_from_kafka
from streams.audit.feed import InputFeed, InputReadError, LogRestarted
from streams.contracts import AvroCodec, InputEvent
from streams.kafka.topics import TopicSpec, ensure_topics
from streams.replay import replay
from streams.replay_files import DECISIONS_FILE, REWARDS_FILE
from streams.rules import load_terms
from streams.scenario import ScenarioShape, generate

pytestmark = pytest.mark.integration


def _stamps_from(count: int) -> list[int]:
    """`count` Kafka timestamps, a millisecond apart, from an hour ago: recent, as a log's are
    (the broker's retention deletes segments whose records are stamped weeks back)."""
    start = int(time.time() * 1000) - 3_600_000
    return [start + i for i in range(count)]


async def _publish(bootstrap: str, topics: Topics, stamped: list[tuple[int, InputEvent]]) -> None:
    """Each event with its Kafka timestamp, in list order, on 3 partitions per topic."""
    await ensure_topics(bootstrap, [TopicSpec(name, 3) for name in topics.inputs])
    codec = AvroCodec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for stamp, event in stamped:
            await producer.send(
                topics.name(event.topic),
                codec.encode_record(event),
                key=event.key.encode(),
                timestamp_ms=stamp,
            )
        await producer.flush()
    finally:
        await producer.stop()


def _events() -> list[InputEvent]:
    return list(generate(ScenarioShape(leads=400, referrers=40, seed=11)))


def _files(out: Path) -> tuple[bytes, bytes]:
    return (out / REWARDS_FILE).read_bytes(), (out / DECISIONS_FILE).read_bytes()


async def _replayed(bootstrap: str, topics: Topics, out: Path) -> tuple[int, tuple[bytes, bytes]]:
    summary = await replay_from_kafka(
        bootstrap=bootstrap, topics=topics, app_id="unused", programme=load_terms(),
        journal=False, since_ms=None, as_of=None, out_dir=out, to_topics=None, quiet=True,
    )  # fmt: skip
    return summary.events, _files(out)


def _expected(in_order: list[InputEvent], out: Path) -> tuple[bytes, bytes]:
    replay(in_order, load_terms(), out)
    return _files(out)


async def test_time_a_log_stamped_as_it_was_sent_replays_as_the_jsonl_replay(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    events = _events()
    topics = Topics(f"feed-{unique}.")
    await _publish(
        kafka_bootstrap, topics, list(zip(_stamps_from(len(events)), events, strict=True))
    )
    count, files = await _replayed(kafka_bootstrap, topics, tmp_path / "kafka")
    assert count == len(events)
    assert files == _expected(events, tmp_path / "jsonl")
    assert files[0]
    assert files[1]


async def test_time_a_log_whose_timestamps_go_back_is_replayed_whole_in_timestamp_order(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    events = _events()
    stamps = _stamps_from(len(events))
    random.Random(3).shuffle(stamps)
    topics = Topics(f"feed-{unique}.")
    await _publish(kafka_bootstrap, topics, list(zip(stamps, events, strict=True)))
    in_stamp_order = [e for _, e in sorted(zip(stamps, events, strict=True), key=lambda p: p[0])]

    # Handed over one entry at a time, part of the log is out before the reader finds a
    # partition going back: that pass ends with LogRestarted, the next is the whole log.
    with InputFeed(kafka_bootstrap, topics.inputs, chunk=1, quiet=True) as feed:
        first: list[InputEvent] = []
        with pytest.raises(LogRestarted):
            first.extend(feed.entries())  # type: ignore[arg-type]
        assert first  # handed over, and run through the rules by a replay, before the restart
        assert list(feed.entries()) == in_stamp_order
        assert feed.events == len(events)

    count, files = await _replayed(kafka_bootstrap, topics, tmp_path / "kafka")
    assert count == len(events)
    assert files == _expected(in_stamp_order, tmp_path / "jsonl")
    assert files != _expected(events, tmp_path / "sent-order")  # the order did matter


async def test_time_a_reader_that_cannot_reach_the_broker_fails_the_replay_with_the_cause(
    tmp_path: Path,
) -> None:
    with pytest.raises(
        InputReadError, match=r"^reading the input topics from 127\.0\.0\.1:9 failed: "
    ):
        await _replayed("127.0.0.1:9", Topics(""), tmp_path)
    assert not (tmp_path / REWARDS_FILE).exists()
