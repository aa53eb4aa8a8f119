"""The audit commands' shell: read the log, run the core, print or write the results."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from rich.console import Console

from streams.app.settings import Topics
from streams.audit.compare import compare
from streams.audit.explain import lead_story, referrer_story, render_lead, render_referrer
from streams.audit.export import export_topic
from streams.audit.feed import InputFeed, LogRestarted
from streams.audit.journal_replay import JournalReplay, replay_journals
from streams.audit.sources import read_inputs, read_journals, read_outputs
from streams.contracts import AvroCodec, LeadSubmitted, RewardGranted
from streams.contracts.records import RECORD_TYPES
from streams.kafka.connection import client_kwargs
from streams.kafka.topics import TopicSpec, describe_partitions, ensure_topics
from streams.replay import ReplaySummary, quiet_gc, write_outputs
from streams.rules import Engine, Programme
from streams.rules.model import Output


async def publish_outputs(bootstrap: str, prefix: str, outputs: Iterable[Output]) -> int:
    """Produce recomputed outputs to `<prefix>reward-granted` and `<prefix>referral-decisions`
    (never the live topics: a prefix is required)."""
    codec = AvroCodec()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, **client_kwargs()
    )
    await producer.start()
    count = 0
    try:
        for output in outputs:
            key = output.referrer_id if isinstance(output, RewardGranted) else output.lead_id
            await producer.send(
                prefix + output.topic, codec.encode_record(output), key=key.encode()
            )
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def journal_replay(
    bootstrap: str, app_id: str, programme: Programme, quiet: bool
) -> JournalReplay:
    return replay_journals(await read_journals(bootstrap, app_id, quiet=quiet), programme)


async def replay_from_kafka(
    *,
    bootstrap: str,
    topics: Topics,
    app_id: str,
    programme: Programme,
    journal: bool,
    since_ms: int | None,
    as_of: int | None,
    out_dir: Path | None,
    to_topics: str | None,
    quiet: bool,
) -> ReplaySummary:
    if (out_dir is None) == (to_topics is None):
        raise ValueError("replay from Kafka writes either to a directory or to topics")

    async def emit(outputs: Iterable[Output]) -> ReplaySummary:
        if out_dir is not None:
            # The reader process holds the other CPU: the lines are formatted here.
            return write_outputs(outputs, out_dir, background=journal)
        assert to_topics is not None
        outputs = list(outputs)
        summary = ReplaySummary()
        for output in outputs:
            summary.count(output)
        # The copies get the live outputs' partition count, so keys land where they do live.
        live = await describe_partitions(bootstrap, [topics.reward_granted, topics.decisions])
        await ensure_topics(
            bootstrap,
            [
                TopicSpec(to_topics + name, live.get(topics.name(name), 8))
                for name in ("reward-granted", "referral-decisions")
            ],
        )
        await publish_outputs(bootstrap, to_topics, outputs)
        return summary

    async def run() -> ReplaySummary:
        if journal:
            journals = await read_journals(bootstrap, app_id, quiet=quiet)
            summary = await emit(replay_journals(journals, programme).outputs)
            summary.events = journals.input_events
            return summary
        with InputFeed(bootstrap, topics.inputs, since_ms=since_ms, quiet=quiet) as feed:
            while True:
                try:
                    # A stream, not a list: the rules run while the log is read, and the
                    # files are formatted while the rules run.
                    summary = await emit(Engine(programme).outputs(feed.entries(), as_of))
                    break
                except LogRestarted:  # the files or topics were not written: run again
                    continue
        summary.events = feed.events
        if feed.skipped and not quiet:
            skipped = ", ".join(f"{t}={n}" for t, n in sorted(feed.skipped.items()))
            print(f"skipped undecodable input records: {skipped}", file=sys.stderr)
        return summary

    with quiet_gc():
        # Everything the replay holds dies with run's frame, before the collector resumes (a
        # collection with a million records still alive costs seconds).
        return await run()


async def audit(
    *,
    bootstrap: str,
    topics: Topics,
    app_id: str,
    programme: Programme,
    quiet: bool,
    from_inputs: bool = False,
    as_of: int | None = None,
) -> dict[str, Any]:
    """Recompute the outputs (from the journals, or from the input topics) and compare them
    with the output topics. The journals also say which leads got an event after their
    grant (streams.audit.compare)."""
    replayed = await journal_replay(bootstrap, app_id, programme, quiet)
    if from_inputs:
        log = await read_inputs(bootstrap, topics, quiet=quiet)
        expected = Engine(programme).run(log.entries, as_of)
        known = {e.lead_id for e in log.entries if isinstance(e, LeadSubmitted)}
    else:
        expected, known = replayed.outputs, set(replayed.lead_messages)
    emitted = await read_outputs(bootstrap, topics, quiet=quiet)
    report = compare(expected, emitted, known, replayed.late_after_grant)
    result = report.as_json()
    result["source"] = "inputs" if from_inputs else "journals"
    result["journal_failures"] = replayed.failures
    if from_inputs:
        result["skipped_inputs"] = dict(log.skipped)
    return result


def print_audit(result: dict[str, Any], console: Console) -> None:
    matching = ", ".join(f"{t}: {n}" for t, n in sorted(result["matching"].items()))
    console.print(f"matching: {matching or 'nothing'}")
    for d in result["differences"]:
        colour = "yellow" if d["cause"] == "duplicate record" else "red"
        console.print(f"[{colour}]{d['kind']}[/{colour}] {d['topic']} {d['key']}: {d['cause']}")
        for name, values in d["fields"].items():
            console.print(
                f"    {name}: expected {values['expected']!r}, found {values['actual']!r}"
            )
    verdict = (
        "[green]OK[/green]" if result["ok"] else f"[red]{result['unexplained']} unexplained[/red]"
    )
    console.print(f"audit: {verdict}")


async def explain(
    *, bootstrap: str, app_id: str, programme: Programme, lead: str | None, referrer: str | None,
    as_json: bool, quiet: bool,
) -> int:  # fmt: skip
    replayed = await journal_replay(bootstrap, app_id, programme, quiet)
    # Piped into a file or a pager, tables keep whole words rather than the 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if lead is not None:
        story, who, render = lead_story(replayed, lead), f"lead {lead}", render_lead
    else:
        story = referrer_story(replayed, referrer or "", programme)
        who, render = f"referrer {referrer}", render_referrer
    if story is None:
        print(f"no {who} in the journals", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(story, indent=2))
    else:
        render(story, console)
    return 0


def export(
    *, bootstrap: str, topics: Topics, topic: str, since_ms: int | None, until_ms: int | None,
    out: Path | None, quiet: bool,
) -> int:  # fmt: skip
    if topic not in RECORD_TYPES:
        print(f"unknown topic {topic}; one of {', '.join(RECORD_TYPES)}", file=sys.stderr)
        return 2
    kafka_topic = topics.name(topic)
    handle = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        written, bad = asyncio.run(
            export_topic(bootstrap, kafka_topic, topic, handle, since_ms=since_ms,
                         until_ms=until_ms, quiet=quiet)
        )  # fmt: skip
    finally:
        if out:
            handle.close()
    print(f"exported {written} records of {kafka_topic}" + (f", {bad} undecodable" if bad else ""),
          file=sys.stderr)  # fmt: skip
    return 0
