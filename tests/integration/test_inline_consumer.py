"""Faust's consumer on the worker's own event loop (streams.app.inline_consumer): it starts,
reads and stops there, with no thread of its own, and its stop leaves the worker's other
tasks running (Faust's thread cancelled every task left on its loop, then its own)."""

from __future__ import annotations

import asyncio
import threading

import faust
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.app.inline_consumer import InlineConsumerThread, install_inline_consumer
from streams.kafka.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


async def test_the_consumer_reads_on_the_worker_s_loop_and_stops_alone(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(  # restored after the test, for the other tests' apps
        faust_aiokafka.Consumer,
        "_new_consumer_thread",
        faust_aiokafka.Consumer._new_consumer_thread,
    )
    install_inline_consumer()
    topic = f"inline-{unique}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, f"record {n}".encode(), partition=0)
    finally:
        await producer.stop()

    app = faust.App(f"inline-{unique}", broker=f"kafka://{kafka_bootstrap}")
    service = app.consumer._thread
    assert isinstance(service, InlineConsumerThread)
    threads = threading.active_count()
    bystander = asyncio.ensure_future(asyncio.sleep(120))  # another of the worker's tasks
    await service.start()
    try:
        assert threading.active_count() == threads  # no thread of its own
        assert service.thread_loop is asyncio.get_running_loop()
        consumer = service._ensure_consumer()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await service.call_thread(consumer.seek_to_beginning, tp)
        values: list[bytes | None] = []
        for _ in range(20):
            fetched = await service.call_thread(consumer.getmany, tp, timeout_ms=1000)
            values.extend(record.value for record in fetched.get(tp, []))
            if len(values) >= 3:
                break
        assert values == [b"record 0", b"record 1", b"record 2"]
    finally:
        await asyncio.wait_for(service.stop(), 30)
    assert consumer._closed
    assert not bystander.done()  # the consumer's stop cancelled nothing else of the loop
    bystander.cancel()
