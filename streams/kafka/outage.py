"""A broker that is away, said once and then once a minute, not thousands of times.

The Kafka clients log every failed attempt (a connection refused, metadata not updated, a
fetch or produce to a node not ready): tens of lines a second for as long as the broker is
away, while they retry on their own. `OutageFilter` lets the first such line through, worded
for an operator, holds the others back, and lets one through a minute later with the count of
what it held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

# What the clients (aiokafka, and Faust around it) say while the broker cannot be reached.
OUTAGE_SIGNS = (
    "Unable connect to node",
    "Unable to update metadata",
    "Connect call failed",
    "NodeNotReadyError",
    "KafkaConnectionError",
    "Connection at",
    "Failed fetch messages",
    "Group Coordinator Request failed",
    "Got error produce response",
    "NotLeaderForPartitionError",
    "Coordinator load in progress",
    "coordinator dead",
    "Heartbeat failed",
    "Error sending",
    "RequestTimedOutError",
    "KafkaTimeoutError",
)
CLIENT_LOGGERS = ("aiokafka", "faust", "mode", "kafka")


class OutageFilter(logging.Filter):
    """Rate-limits the clients' connection errors to one line per `interval` seconds."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._shown_at: float | None = None
        self._seen_at: float | None = None
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(CLIENT_LOGGERS):
            return True
        text = record.getMessage()
        if not any(sign in text for sign in OUTAGE_SIGNS):
            return True
        now = self.clock()
        quiet_since = self._seen_at
        self._seen_at = now
        if quiet_since is None or now - quiet_since >= self.interval:
            self._shown_at, self._held = None, 0  # a new outage, not the last one going on
        if self._shown_at is not None and now - self._shown_at < self.interval:
            self._held += 1
            return False
        if self._shown_at is None:
            record.msg = "Kafka cannot be reached; the clients retry with backoff: %s"
            record.args = (text,)
        else:
            record.msg = "Kafka still cannot be reached (%d more client messages in %.0f s): %s"
            record.args = (self._held, now - self._shown_at, text)
        record.exc_info = record.exc_text = None  # a traceback per retry says nothing new
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._shown_at, self._held = now, 0
        return True


def install(handlers: Iterable[logging.Handler] | None = None) -> OutageFilter:
    """Put one filter on `handlers` (default: the root logger's, made if there are none)."""
    root = logging.getLogger()
    if handlers is None:
        if not root.handlers:
            logging.basicConfig(format="[%(asctime)s] [%(levelname)s] %(message)s")
        handlers = root.handlers
    outage = OutageFilter()
    for handler in handlers:
        handler.addFilter(outage)
    return outage
