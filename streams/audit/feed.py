"""The input log, read in a second process while the rules run (`replay --from-kafka`).

Reading and decoding records costs about what the rules cost, and both hold a CPU: in one
process they add up. Here a reader process reads the input topics, decodes and orders the
records (LogBuilder) and hands the head of the log over as soon as its order is certain; the
replay runs the rules on it meanwhile. Records cross as tuples of field values, which pickle
at a fraction of the cost of the records themselves.

Should a partition's timestamps go back behind what was already handed over, the reader says
so at once, reads on, and hands the whole log over again, sorted: the replay's pass over the
log raises LogRestarted, and the next pass gets the right order from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import multiprocessing
import pickle
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType

from streams.audit.sources import LogMerge
from streams.contracts.records import (
    CLOCK_TOPIC,
    INPUT_TOPICS,
    RECORD_TYPES,
    ClockAdvanced,
    TaggedFields,
)
from streams.kafka.reader import ReadProgress, TopicRead
from streams.replay import LogEntry

CHUNK = 1_000  # entries per message: small enough that the rules start early
PIPE_BYTES = 1 << 20  # the most Linux lets any process ask for, by default
# Per partition and fetch: each fetch brings a little of every partition, so the merge has
# every partition's next record early (with 4 MiB, the first fetches fill up on a few).
FETCH_BYTES = 512 * 1024

_TAGGED = TaggedFields(tuple(RECORD_TYPES[topic] for topic in (*INPUT_TOPICS, CLOCK_TOPIC)))
_CLOCK = _TAGGED.kinds.index(ClockAdvanced)

# What the reader sends: (tag, payload), pickled.
_ENTRIES, _RESTART, _END, _FAILED = "entries", "restart", "end", "failed"


class LogRestarted(Exception):
    """The log handed over so far was out of order; the next pass starts from the beginning."""


class InputReadError(RuntimeError):
    """The reader process failed (the broker unreachable, say) or went away."""


class InputFeed:
    """The input topics' log from a reader process (see the module). Use it in a `with`
    block; each call of `entries()` is one pass over the log."""

    def __init__(
        self,
        bootstrap: str,
        contract_of: dict[str, str],
        *,
        since_ms: int | None = None,
        quiet: bool = False,
        chunk: int = CHUNK,
    ) -> None:
        self._plan = _ReadPlan(bootstrap, dict(contract_of), since_ms, quiet, chunk)
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.events = 0  # input events (not clock records) of the last pass
        self.skipped: Counter[str] = Counter()  # undecodable records, by topic, once read

    def __enter__(self) -> InputFeed:
        # Spawned, not forked: the caller runs an event loop.
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe(duplex=False)
        _widen(self._conn)
        self._process = context.Process(
            target=_read_in_background, args=(theirs, self._plan), name="replay-reader"
        )
        self._process.start()
        theirs.close()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if exc_type is None:
                self._process.join(timeout=10)
            if self._process.is_alive():
                # Stopped early: the rest of the log is not wanted.
                self._process.kill()
            self._process.join()
            self._process = None

    def entries(self) -> Iterator[LogEntry]:
        """One pass over the log, in order; LogRestarted if it turned out of order."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("InputFeed.entries() outside its with block")
        self.events = 0
        while True:
            try:
                tag, payload = pickle.loads(conn.recv_bytes())
            except EOFError:
                raise InputReadError("the reader process exited without a word") from None
            if tag == _ENTRIES:
                entries = _TAGGED.load(payload)
                self.events += sum(tag != _CLOCK for tag, _ in payload)
                yield from entries
            elif tag == _RESTART:
                raise LogRestarted
            elif tag == _END:
                self.skipped = Counter(payload)
                return
            else:
                raise InputReadError(payload)


@dataclass(frozen=True)
class _ReadPlan:
    """What the reader process reads, and how it hands it over."""

    bootstrap: str
    contract_of: dict[str, str]
    since_ms: int | None
    quiet: bool
    chunk: int


def _read_in_background(conn: Connection, plan: _ReadPlan) -> None:
    """The reader process: the log to `conn`, then the skipped counts, or what went wrong."""
    # It holds every record it read until the end (for a restart): a collection would walk
    # them all again and again, and nothing it holds forms a cycle.
    gc.disable()
    try:
        asyncio.run(_read(conn, plan))
    except BaseException as exc:  # reported to the replay, which raises
        cause = f"{type(exc).__name__}: {exc}"
        _send(conn, _FAILED, f"reading the input topics from {plan.bootstrap} failed: {cause}")
    finally:
        conn.close()


async def _read(conn: Connection, plan: _ReadPlan) -> None:
    chunk = plan.chunk
    async with TopicRead(
        plan.bootstrap,
        list(plan.contract_of),
        since_ms=plan.since_ms,
        partition_fetch_bytes=FETCH_BYTES,
    ) as read:
        merge = LogMerge(plan.contract_of, read.partitions)
        restarted = False
        with ReadProgress("reading inputs", quiet=plan.quiet) as progress:
            progress.start(read.total)
            while not merge.drained:
                # Fetch without waiting while there is work: the consumer fetches the next
                # records in the background, for the partitions whose records it handed out.
                fetched = await read.fetch(0 if merge.waiting else 1000)
                merge.put(fetched)
                progress.advance(sum(len(part.records) for part in fetched))
                entries = merge.take(chunk)
                if not merge.reordered:
                    _send_entries(conn, entries, chunk)
                elif not restarted:
                    _send(conn, _RESTART, None)
                    restarted = True
    if restarted:
        _send_entries(conn, merge.log().entries, chunk)
    _send(conn, _END, dict(merge.skipped))


def _send_entries(conn: Connection, entries: list[LogEntry], chunk: int) -> None:
    for start in range(0, len(entries), chunk):
        _send(conn, _ENTRIES, _TAGGED.dump(entries[start : start + chunk]))


def _widen(conn: Connection) -> None:
    """Let the pipe hold several chunks: with the default 64 KiB, the reader waits for the
    replay to take each chunk, and the replay for the reader to write the next one."""
    # Not Linux, or over the system's limit: slower, not wrong.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _send(conn: Connection, tag: str, payload: object) -> None:
    conn.send_bytes(pickle.dumps((tag, payload), pickle.HIGHEST_PROTOCOL))
