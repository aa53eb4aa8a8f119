"""An aiokafka client of the worker's process starting while the broker is away waits for it;
one refused as configured does not."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient

from streams.kafka.connection import KafkaRefused, wait_for_the_broker_at_start
from tests.conftest import broker_config
from tests.integration.gate import Gate

pytestmark = pytest.mark.integration


@pytest.fixture
def patient_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's start-up wait, for this test only (the other tests' clients fail fast)."""
    monkeypatch.setattr(AIOKafkaClient, "bootstrap", AIOKafkaClient.bootstrap)
    wait_for_the_broker_at_start()


async def test_a_client_started_while_the_broker_is_away_starts_once_it_is_back(
    kafka_bootstrap: str, patient_clients: None
) -> None:
    gate = Gate(kafka_bootstrap)
    gate.close()
    producer = AIOKafkaProducer(bootstrap_servers=gate.bootstrap)
    try:
        started = time.monotonic()
        starting = asyncio.create_task(producer.start())
        await asyncio.sleep(3)
        assert not starting.done()  # waiting, not failed
        gate.open()
        await asyncio.wait_for(starting, 30)
        assert time.monotonic() - started >= 3
        assert producer.client.cluster.brokers()
    finally:
        await producer.stop()
        gate.stop()


async def test_a_client_refused_as_configured_fails_at_once(
    kafka_bootstrap: str, patient_clients: None
) -> None:
    """A plaintext client on the TLS listener: waiting would never help."""
    tls_listener = broker_config().sasl_ssl_bootstrap
    assert tls_listener is not None
    producer = AIOKafkaProducer(bootstrap_servers=tls_listener)
    try:
        with pytest.raises(KafkaRefused, match="is a TLS listener"):
            await asyncio.wait_for(producer.start(), 30)
    finally:
        await producer.stop()
