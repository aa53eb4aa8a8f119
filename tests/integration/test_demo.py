"""The demo publishes the scenario, rebased to now, as valid records on the input topics."""

from __future__ import annotations

import uuid

import pytest
from rich.console import Console

from streams.app.settings import Topics
from streams.contracts import AvroCodec
from streams.demo import DemoOptions, publish
from streams.kafka.topics import TopicSpec, ensure_topics
from tests.e2e.harness import read_topic

pytestmark = pytest.mark.integration


async def test_demo_publishes_decodable_events_for_every_input_topic(kafka_bootstrap: str) -> None:
    prefix = f"demo-{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 8) for name in topics.inputs])
    options = DemoOptions(
        kafka_bootstrap, referrers=10, leads=30, rate=500.0, topic_prefix=prefix, step_ms=50
    )
    sent = await publish(options, Console(quiet=True))
    codec = AvroCodec()
    received = 0
    for kafka_topic, contract in topics.inputs.items():
        for message in await read_topic(kafka_bootstrap, kafka_topic):
            record = codec.decode_record(
                contract, message.value, kafka_timestamp_ms=message.timestamp_ms
            )  # contract checks included: nothing the worker would dead-letter
            assert record.topic == contract
            received += 1
    assert received == sent > 60
