"""Start a worker: check the terms, create or check the topics, then run the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from streams.app.settings import Settings
from streams.app.topology import ReferralWorker
from streams.kafka import outage
from streams.kafka.connection import (
    BrokerWait,
    KafkaRefused,
    wait_for_the_broker_at_start,
    why_unreachable,
)
from streams.kafka.topics import TopicLayoutError, TopicSpec, ensure_topics
from streams.rules import TermsError, load_terms

log = logging.getLogger("referral.worker")
MAX_BACKOFF_S = 30.0


def wait_for_topics(
    settings: Settings, specs: list[TopicSpec], sleep: Any = time.sleep
) -> list[str]:
    """Create or check the topics, waiting for the broker with backoff while it cannot be
    reached: one line at first, then a reminder a minute (a supervisor need not restart us).
    A topic layout that breaks co-partitioning, and a broker that answers but refuses the
    connection as configured (TLS trust, credentials: KafkaRefused), are not waited for."""
    wait = BrokerWait(f"cannot reach Kafka at {settings.bootstrap}", 1.0, MAX_BACKOFF_S, log)
    while True:
        try:
            created = asyncio.run(ensure_topics(settings.bootstrap, specs))
        except TopicLayoutError:
            raise
        except Exception as exc:
            sleep(wait.failed(asyncio.run(why_unreachable(settings.bootstrap, exc))))
            continue
        if wait.started is not None:
            log.info("Kafka at %s reached", settings.bootstrap)
        return created


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGINT/SIGTERM); returns an exit status only when it cannot start."""
    try:
        programme = load_terms(settings.terms)
    except TermsError as exc:
        print(f"referral-rewards worker: {exc}", file=sys.stderr)
        return 2
    outage.install()
    logging.getLogger().setLevel(settings.log_level.upper())
    worker = ReferralWorker(settings, programme)
    specs = worker.topic_specs()
    try:
        created = wait_for_topics(settings, specs)
    except TopicLayoutError as exc:
        print(f"referral-rewards worker: refusing to start: {exc}", file=sys.stderr)
        return 2
    except KafkaRefused as exc:
        print(f"referral-rewards worker: cannot connect to Kafka: {exc}", file=sys.stderr)
        return 2
    if created:
        log.info("created topics: %s", ", ".join(created))
    worker.checked_topics.update(spec.name for spec in specs)
    wait_for_the_broker_at_start()  # the broker may go between the topic check and Faust's start
    import faust

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            outage.install(logger.handlers)  # Faust replaced the handlers: filter its own

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    asyncio.set_event_loop(asyncio.new_event_loop())
    Worker(worker.app, loglevel=settings.log_level).execute_from_commandline()
    return 0  # pragma: no cover  (execute_from_commandline exits the process)
