"""The worker's start (streams.app.runner): what it waits for while its topics are checked."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from streams.app import runner
from streams.app.settings import Settings
from streams.kafka import connection


def test_a_topic_check_that_fails_while_the_broker_answers_is_retried_with_its_own_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that answers the probe but fails the topic check (a controller not elected
    yet, right after a restart) is waited for, and the line names the check's error: the
    wait used to crash on a reason it never set."""
    tries: list[int] = []

    async def ensure_topics(bootstrap: str, specs: Any) -> list[str]:
        tries.append(1)
        if len(tries) == 1:
            raise TimeoutError()
        return ["t"]

    async def probe(bootstrap: str, security: Any = None) -> None:
        return None  # the broker answers

    monkeypatch.setattr(runner, "ensure_topics", ensure_topics)
    monkeypatch.setattr(connection, "probe", probe)
    slept: list[float] = []
    with caplog.at_level(logging.INFO, logger="referral.worker"):
        created = runner.wait_for_topics(Settings(bootstrap="k:9092"), [], sleep=slept.append)
    assert created == ["t"]
    assert slept == [1.0]
    assert [r.getMessage() for r in caplog.records] == [
        "cannot reach Kafka at k:9092 (TimeoutError); retrying with backoff, a reminder a minute",
        "Kafka at k:9092 reached",
    ]
