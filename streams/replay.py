"""`referral-rewards replay`: the rules over a log of events, for audits and fixtures.

The log holds input events and, optionally, explicit clock records (topic `referral-clock`),
applied in file order; the clock finally advances to `--as-of`.

The output files are a stable contract: `reward-granted.jsonl` and `referral-decisions.jsonl`
in emission order, in the JSONL convention. They appear only when the whole replay succeeded.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from streams.contracts import (
    CLOCK_TOPIC,
    INPUT_TOPICS,
    ClockAdvanced,
    JsonlCodec,
    JsonlError,
    Record,
)
from streams.contracts.records import InputEvent, RewardGranted
from streams.rules.engine import Engine
from streams.rules.model import Output
from streams.rules.terms import Programme

REWARDS_FILE = "reward-granted.jsonl"
DECISIONS_FILE = "referral-decisions.jsonl"


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
    third of the run. Collected once at the end instead.
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


@contextlib.contextmanager
def output_files(out_dir: Path) -> Iterator[Callable[[Output], None]]:
    """A writer of the two output files; they appear (atomically) only if the block succeeds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    codec = JsonlCodec()
    with ExitStack() as stack:
        temps = {}
        for name in (REWARDS_FILE, DECISIONS_FILE):
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115  # closed by the stack
                "w", encoding="utf-8", dir=out_dir, prefix=f".{name}.", delete=False
            )
            stack.callback(_discard, handle.name)
            temps[name] = stack.enter_context(handle)

        def write(output: Output) -> None:
            name = REWARDS_FILE if isinstance(output, RewardGranted) else DECISIONS_FILE
            temps[name].write(codec.format(output) + "\n")

        yield write
        for name, handle in temps.items():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(handle.name, out_dir / name)


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


def write_outputs(outputs: Iterable[Output], out_dir: Path) -> ReplaySummary:
    """Write already computed outputs (a journal replay's) as the replay's two files."""
    summary = ReplaySummary()
    with output_files(out_dir) as write:
        for output in outputs:
            summary.count(output)
            write(output)
    return summary


def _discard(path: str) -> None:
    Path(path).unlink(missing_ok=True)
