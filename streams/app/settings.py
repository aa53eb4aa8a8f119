"""Worker configuration: flags, each with an environment variable fallback, local defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from streams.kafka.broker import cache_dir


class ClockMode(StrEnum):
    WALL = "wall"  # clock records from the wall clock while caught up (production)
    EVENTS = "events"  # only event times and explicit clock records move the clock


@dataclass(frozen=True)
class Topics:
    """Every topic name the worker uses; `prefix` namespaces a whole deployment (or a test)."""

    prefix: str = ""

    def name(self, base: str) -> str:
        """The Kafka name of a contract topic under this prefix."""
        return f"{self.prefix}{base}"

    @property
    def lead_submitted(self) -> str:
        return self.name("lead-submitted")

    @property
    def client_signed(self) -> str:
        return self.name("client-signed")

    @property
    def invoice_paid(self) -> str:
        return self.name("invoice-paid")

    @property
    def referral_refused(self) -> str:
        return self.name("referral-refused")

    @property
    def clock(self) -> str:
        return self.name("referral-clock")

    @property
    def reward_granted(self) -> str:
        return self.name("reward-granted")

    @property
    def decisions(self) -> str:
        return self.name("referral-decisions")

    @property
    def dead_letters(self) -> str:
        return self.name("referral-dead-letters")

    @property
    def inputs(self) -> dict[str, str]:
        """Kafka topic name -> contract topic name, for every topic the worker ingests."""
        return {
            self.lead_submitted: "lead-submitted",
            self.client_signed: "client-signed",
            self.invoice_paid: "invoice-paid",
            self.referral_refused: "referral-refused",
            self.clock: "referral-clock",
        }


@dataclass(frozen=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    app_id: str = "referral-rewards"
    terms: Path | None = None
    data_dir: Path | None = None
    web_host: str = "127.0.0.1"  # where other workers reach this one (forwarded queries)
    web_bind: str = ""  # the address the web server listens on; empty: web_host
    web_port: int = 6066
    partitions: int = 8
    replication: int = 1
    topic_prefix: str = ""
    clock: ClockMode = ClockMode.WALL
    tick_interval_s: float = 1.0
    commit_interval_s: float = 2.8
    session_timeout_s: float = 10.0  # a silent worker's partitions move after this long
    batch_size: int = 500  # events an agent takes through the rules in one round
    # How long a round with room waits for more records (each hop of a reward pays it): none,
    # since rounds stopped waiting for acknowledgements; a round takes what is queued.
    batch_wait_s: float = 0.0
    rounds_in_flight: int = 3  # rounds an agent computes ahead of the broker's acknowledgements
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("batch_size", "rounds_in_flight", "partitions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def state_dir(self) -> Path:
        """Where RocksDB keeps the tables: one folder per app id and web port."""
        base = self.data_dir or cache_dir() / "worker-data"
        return base / f"{self.app_id}-{self.web_port}"


ENV = {
    "bootstrap": "REFERRAL_BOOTSTRAP",
    "app_id": "REFERRAL_APP_ID",
    "terms": "REFERRAL_TERMS",
    "data_dir": "REFERRAL_DATA_DIR",
    "web_host": "REFERRAL_WEB_HOST",
    "web_bind": "REFERRAL_WEB_BIND",
    "web_port": "REFERRAL_WEB_PORT",
    "partitions": "REFERRAL_PARTITIONS",
    "replication": "REFERRAL_REPLICATION",
    "topic_prefix": "REFERRAL_TOPIC_PREFIX",
    "clock": "REFERRAL_CLOCK",
    "tick_interval_s": "REFERRAL_TICK_INTERVAL",
    "commit_interval_s": "REFERRAL_COMMIT_INTERVAL",
    "session_timeout_s": "REFERRAL_SESSION_TIMEOUT",
    "batch_size": "REFERRAL_BATCH_SIZE",
    "batch_wait_s": "REFERRAL_BATCH_WAIT",
    "rounds_in_flight": "REFERRAL_ROUNDS_IN_FLIGHT",
    "log_level": "REFERRAL_LOG_LEVEL",
}


def default_bootstrap() -> str:
    """$REFERRAL_BOOTSTRAP, else the project's local broker on $KAFKA_PORT (default 9092)."""
    return (
        os.environ.get("REFERRAL_BOOTSTRAP") or f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
    )
