"""Start a worker: check the terms, create or check the topics, then run the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import sys

from streams.app.settings import Settings
from streams.app.topology import ReferralWorker
from streams.kafka.topics import TopicLayoutError, ensure_topics
from streams.rules import TermsError, load_terms


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGINT/SIGTERM); returns an exit status only when it cannot start."""
    try:
        programme = load_terms(settings.terms)
    except TermsError as exc:
        print(f"referral-rewards worker: {exc}", file=sys.stderr)
        return 2
    worker = ReferralWorker(settings, programme)
    try:
        created = asyncio.run(ensure_topics(settings.bootstrap, worker.topic_specs()))
    except TopicLayoutError as exc:
        print(f"referral-rewards worker: refusing to start: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the broker is unreachable, most likely
        print(
            f"referral-rewards worker: cannot reach Kafka at {settings.bootstrap}: {exc}",
            file=sys.stderr,
        )
        return 2
    if created:
        logging.getLogger("referral.worker").info("created topics: %s", ", ".join(created))
    import faust

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    asyncio.set_event_loop(asyncio.new_event_loop())
    faust.Worker(worker.app, loglevel=settings.log_level).execute_from_commandline()
    return 0  # pragma: no cover  (execute_from_commandline exits the process)
