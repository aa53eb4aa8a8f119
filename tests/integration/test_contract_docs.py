"""The producer example of docs/contracts.md runs as written and the engine decodes it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.contracts import AvroCodec, InvoicePaid
from streams.kafka.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _example() -> str:
    text = (ROOT / "docs" / "contracts.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


async def test_documented_invoice_paid_producer_is_decoded_by_the_engine(
    kafka_bootstrap: str,
) -> None:
    await ensure_topics(kafka_bootstrap, [TopicSpec("invoice-paid", 8)])
    code = _example().replace("asyncio.run(publish(BOOTSTRAP))", "")
    namespace: dict[str, object] = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # the example opens schemas/ relative to the repository
    try:
        exec(compile(code, "docs/contracts.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    await namespace["publish"](kafka_bootstrap)  # type: ignore[operator]

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition("invoice-paid", p) for p in range(8)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        msg = None
        for _ in range(40):
            batch = await consumer.getmany(timeout_ms=500)
            found = [m for msgs in batch.values() for m in msgs if m.key == b"acc-42"]
            if found:
                msg = found[0]
                break
        assert msg is not None, "the documented producer's record never arrived"
    finally:
        await consumer.stop()
    record = AvroCodec().decode_record("invoice-paid", msg.value, kafka_timestamp_ms=msg.timestamp)
    assert isinstance(record, InvoicePaid)
    assert (record.account_id, record.invoice_sequence, record.amount_cents) == ("acc-42", 1, 12900)
