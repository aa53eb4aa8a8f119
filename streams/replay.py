"""`referral-rewards replay`: the rules over a log of events, for audits and fixtures.

The log holds input events and, optionally, explicit clock records (topic `referral-clock`),
applied in file order; the clock finally advances to `--as-of`.

The output files are a stable contract: `reward-granted.jsonl` and `referral-decisions.jsonl`
in emission order, in the JSONL convention. They appear only when the whole replay succeeded.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streams.contracts import (
    CLOCK_TOPIC,
    INPUT_TOPICS,
    ClockAdvanced,
    JsonlError,
    Record,
)
from streams.contracts.records import InputEvent, RewardGranted
from streams.replay_files import output_files
from streams.rules.engine import Engine
from streams.rules.model import Output
from streams.rules.terms import Programme


@dataclass
class ReplaySummary:
    events: int = 0
    rewards: int = 0
    reward_cents: int = 0
    decisions: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    overdue: int = 0

    def count(self, output: Output) -> None:
        if isinstance(output, RewardGranted):
            self.rewards += 1
            self.reward_cents += output.amount_cents
            self.overdue += output.granted_at > output.due_by
        else:
            self.decisions += 1
            if output.reason is not None:
                self.rejections[output.reason.value] += 1

    def line(self) -> str:
        rejected = ", ".join(f"{k}={v}" for k, v in sorted(self.rejections.items())) or "none"
        return (
            f"{self.events} events: {self.rewards} rewards ({self.reward_cents} cents, "
            f"{self.overdue} past due_by), {self.decisions} decisions; rejected: {rejected}"
        )


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector while a batch runs.

    The core's state is acyclic (reference counting frees it), but with millions of live
    records every full collection walks all of them: on a 1M-event replay that was over a
    third of the run. Collected once at the end instead, which is cheap only if the batch's
    data is gone by then: keep it in a frame that returns inside the block.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


LogEntry = InputEvent | ClockAdvanced


def input_events(records: Iterable[tuple[int, Record]]) -> Iterator[LogEntry]:
    """The input events and clock records of a JSONL log; any other topic is a bad line."""
    for line, record in records:
        if not isinstance(record, LogEntry):
            raise JsonlError(
                line,
                f"topic {record.topic!r} is not an input topic "
                f"({', '.join((*INPUT_TOPICS, CLOCK_TOPIC))})",
                field="topic",
            )
        yield record


def replay(
    events: Iterable[LogEntry], programme: Programme, out_dir: Path, as_of: int | None = None
) -> ReplaySummary:
    """Run the rules over `events` in order; write the two output files into `out_dir`."""
    summary = ReplaySummary()

    def counted(entries: Iterable[LogEntry]) -> Iterator[LogEntry]:
        for entry in entries:
            summary.events += not isinstance(entry, ClockAdvanced)
            yield entry

    with quiet_gc(), output_files(out_dir) as write:
        for output in Engine(programme).outputs(counted(events), as_of):
            summary.count(output)
            write(output)
    return summary


def write_outputs(
    outputs: Iterable[Output], out_dir: Path, *, background: bool = True
) -> ReplaySummary:
    """Write outputs (a journal replay's, or a stream of them) as the replay's two files;
    `background`: format them in a second process (streams.replay_files)."""
    summary = ReplaySummary()
    with output_files(out_dir, background=background) as write:
        for output in outputs:
            summary.count(output)
            write(output)
    return summary
