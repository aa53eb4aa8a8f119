"""A broker that is away is said once, then once a minute, never once per retry."""

from __future__ import annotations

import logging

from streams.kafka.outage import OutageFilter


def record(name: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_storm_of_connection_errors_becomes_one_line_and_a_reminder_a_minute() -> None:
    clock = Clock()
    outage = OutageFilter(interval=60, clock=clock)
    refused = "Unable connect to node with id 1: [Errno 111] Connect call failed"
    shown = []
    for tick in range(1300):  # ten retries a second for 130 s
        clock.now = tick / 10
        r = record("aiokafka.conn", refused)
        if outage.filter(r):
            shown.append((clock.now, r.getMessage(), r.levelname))
    assert [at for at, _, _ in shown] == [0.0, 60.0, 120.0]
    assert shown[0][1].startswith("Kafka cannot be reached; the clients retry with backoff")
    assert "still cannot be reached (599 more client messages in 60 s)" in shown[1][1]
    assert all(level == "WARNING" for _, _, level in shown)


def test_a_new_outage_after_a_quiet_minute_is_said_again() -> None:
    clock = Clock()
    outage = OutageFilter(interval=60, clock=clock)
    assert outage.filter(record("aiokafka.client", "Unable to update metadata from [1]"))
    clock.now = 1
    assert not outage.filter(record("aiokafka.client", "Unable to update metadata from [1]"))
    clock.now = 500
    again = record("aiokafka.client", "Unable to update metadata from [1]")
    assert outage.filter(again)
    assert again.getMessage().startswith("Kafka cannot be reached")


def test_other_lines_pass_untouched() -> None:
    outage = OutageFilter(interval=60, clock=Clock())
    ours = record("referral.worker", "Unable connect to node (our own words)")
    assert outage.filter(ours)
    assert outage.filter(record("aiokafka.conn", "something else entirely"))
    info = record("aiokafka.conn", "Unable connect to node", logging.INFO)
    assert outage.filter(info)
    assert info.getMessage() == "Unable connect to node"
