"""Shared fixtures: one real Kafka broker for the whole session, started like `make kafka-up`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from streams.kafka import broker


def broker_config() -> broker.BrokerConfig:
    """The test broker: $KAFKA_TEST_PORT (19092), with a SASL_SSL listener two ports up."""
    return broker.BrokerConfig.from_env(
        int(os.environ.get("KAFKA_TEST_PORT", "19092")), secure=True
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a fresh local broker on $KAFKA_TEST_PORT (default 19092).

    The broker is started through the same code path as `make kafka-up` and stopped at the end,
    also when tests fail. When it cannot start, the session fails with the broker's log tail:
    an integration test never skips.
    """
    cfg = broker_config()
    broker.down(cfg)  # a broker left by a killed session holds the test port
    try:
        bootstrap, _ = broker.up(cfg, fresh=True)
    except broker.BrokerError as exc:
        pytest.fail(f"the test broker could not start: {exc}", pytrace=False)
    try:
        yield bootstrap
    finally:
        broker.down(cfg)


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps one test's topics and groups apart from every other's."""
    return uuid.uuid4().hex[:10]
