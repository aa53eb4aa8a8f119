"""What audits read: the input topics (decoded, in a deterministic order) and the journals."""

from __future__ import annotations

import sys
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from heapq import heappop, heappush
from operator import itemgetter

from streams.app.journal import decode_message, journal_topic
from streams.app.packing import PackError, unpack
from streams.app.settings import Topics
from streams.contracts import AvroCodec, ClockAdvanced, CodecError, InputEvent, InvoicePaid
from streams.contracts.records import Record
from streams.kafka.reader import PartitionRecords, RawRecord, ReadProgress, read_topics
from streams.replay import LogEntry
from streams.rules.model import FirstInvoicePaid, Message, Route

# Among records with the same Kafka timestamp, a fixed topic order keeps the merge stable.
_TOPIC_RANK = {
    "lead-submitted": 0,
    "client-signed": 1,
    "invoice-paid": 2,
    "referral-refused": 3,
    "referral-clock": 4,
}


@dataclass
class InputLog:
    entries: list[InputEvent | ClockAdvanced] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # undecodable records, by topic


# (Kafka timestamp, topic rank, partition, offset): a record's place in the replay's log.
Position = tuple[int, int, int, int]


class LogBuilder:
    """Decodes input records as they come and orders them into the replay's log: by (Kafka
    timestamp, topic, partition, offset), so the same log always gives the same order.
    Records the live worker would have dead-lettered are skipped and counted."""

    def __init__(self, contract_of: Mapping[str, str]) -> None:
        self._codec = AvroCodec()
        self._contract_of = contract_of
        self._rank = {topic: _TOPIC_RANK[contract] for topic, contract in contract_of.items()}
        self._keyed: list[tuple[Position, LogEntry]] = []
        self.skipped: Counter[str] = Counter()

    def position(self, record: RawRecord) -> Position:
        """The record's place in the log."""
        return (record.timestamp_ms, self._rank[record.topic], record.partition, record.offset)

    def add(self, record: RawRecord, position: Position | None = None) -> LogEntry | None:
        """Decode and keep one record (at `position`, when known already); its entry, or None
        if it was skipped."""
        contract = self._contract_of[record.topic]
        try:
            decoded = self._codec.decode_record(
                contract, record.value or b"", kafka_timestamp_ms=record.timestamp_ms
            )
        except CodecError:
            self.skipped[contract] += 1
            return None
        if not isinstance(decoded, InputEvent | ClockAdvanced):
            return None
        self._keyed.append((position or self.position(record), decoded))
        return decoded

    def log(self) -> InputLog:
        """The log so far, in order (positions are unique: entries are never compared)."""
        self._keyed.sort(key=itemgetter(0))
        return InputLog([entry for _, entry in self._keyed], Counter(self.skipped))


class LogMerge:
    """The replay's log while its partitions are still being read, head first.

    The records fetched so far wait in their partition's queue; `take` merges the queues by
    position and decodes what comes out, as long as every partition still being read has a
    record waiting (the next one of an empty queue could come first). The order is exact
    while each partition's timestamps do not go back, as when producers stamp records as
    they send them. Once one goes back, `reordered` turns true, and only `log()`, everything
    sorted once all is read, is right.
    """

    def __init__(self, contract_of: Mapping[str, str], partitions: Iterable[tuple[str, int]]):
        self._builder = LogBuilder(contract_of)
        self._queues: dict[tuple[str, int], deque[RawRecord]] = {p: deque() for p in partitions}
        self._open = set(self._queues)  # partitions with records still to fetch
        self._heads: list[tuple[Position, tuple[str, int]]] = []  # a heap: each queue's first
        self._starved = len(self._open)  # open partitions with an empty queue, kept up to date
        self._last: Position | None = None
        self.reordered = False

    @property
    def skipped(self) -> Counter[str]:
        return self._builder.skipped

    @property
    def waiting(self) -> bool:
        """Whether `take` would give something now."""
        return bool(self._heads) and not self._starved

    @property
    def drained(self) -> bool:
        """Everything fetched and taken."""
        return not self._open and not self._heads

    def put(self, fetched: Iterable[PartitionRecords]) -> None:
        """Queue what a fetch brought."""
        for part in fetched:
            key = (part.topic, part.partition)
            queue = self._queues.get(key)
            if queue is None:
                continue
            was_empty = not queue
            queue.extend(part.records)
            if was_empty and queue:
                self._push(key)
            if key in self._open and was_empty and (queue or part.done):
                self._starved -= 1
            if part.done:
                self._open.discard(key)

    def take(self, limit: int) -> list[LogEntry]:
        """Up to `limit` records off the head of the log, decoded (skipped ones left out)."""
        out: list[LogEntry] = []
        heads, queues, add = self._heads, self._queues, self._builder.add
        for _ in range(limit):
            if self._starved or not heads:
                break
            position, key = heappop(heads)
            if self._last is not None and position < self._last:
                self.reordered = True
            self._last = position
            queue = queues[key]
            entry = add(queue.popleft(), position)
            if entry is not None:
                out.append(entry)
            if queue:
                self._push(key)
            elif key in self._open:
                self._starved += 1
        return out

    def _push(self, key: tuple[str, int]) -> None:
        """The queue's first record into the heap."""
        heappush(self._heads, (self._builder.position(self._queues[key][0]), key))

    def log(self) -> InputLog:
        """The whole log, in order: what was taken and what is left (everything must have been
        fetched)."""
        self.take(sys.maxsize)
        return self._builder.log()


async def read_inputs(
    bootstrap: str,
    topics: Topics,
    *,
    since_ms: int | None = None,
    quiet: bool = False,
) -> InputLog:
    """The input topics merged into one log (see LogBuilder)."""
    contract_of = topics.inputs
    builder = LogBuilder(contract_of)
    with ReadProgress("reading inputs", quiet=quiet) as progress:
        async for record in read_topics(
            bootstrap, list(contract_of), since_ms=since_ms, progress=progress
        ):
            builder.add(record)
    return builder.log()


@dataclass
class Journals:
    """Each journal's partitions, each a list of (offset, message) in offset order (the
    messages of a packed record share its offset, in the order they were packed)."""

    partitions: dict[Route, dict[int, list[tuple[int, Message]]]] = field(default_factory=dict)
    unreadable: int = 0

    @property
    def input_events(self) -> int:
        """How many input events (from the CRM and billing) the journals carry: each one
        journaled, and each first invoice that reached its lead from the account agent, which
        reads billing's invoices itself (the lead journal carries it as FirstInvoicePaid)."""
        events = 0
        journaled: set[str] = set()  # invoices in the account journal (forwarded, or older)
        reached: set[str] = set()  # first invoices that reached their lead, by event id
        for partitions in self.partitions.values():
            for messages in partitions.values():
                for _, message in messages:
                    if isinstance(message, InputEvent):
                        events += 1
                        if type(message) is InvoicePaid:
                            journaled.add(message.event_id)
                    elif type(message) is FirstInvoicePaid:
                        reached.add(message.event_id)
        return events + len(reached - journaled)


async def read_journals(bootstrap: str, app_id: str, *, quiet: bool = False) -> Journals:
    names = {journal_topic(app_id, route): route for route in Route}
    journals = Journals({route: {} for route in Route})
    with ReadProgress("reading journals", quiet=quiet) as progress:
        async for record in read_topics(bootstrap, list(names), progress=progress):
            messages = journals.partitions[names[record.topic]].setdefault(record.partition, [])
            try:
                entries = unpack(record.key, record.value)
            except PackError:
                journals.unreadable += 1
                continue
            for _, value in entries:  # a packed record's messages share its offset
                try:
                    messages.append((record.offset, decode_message(value or b"")))
                except ValueError:
                    journals.unreadable += 1
    return journals


async def read_outputs(
    bootstrap: str, topics: Topics, *, quiet: bool = False
) -> dict[str, list[Record]]:
    """What is on reward-granted and referral-decisions, decoded, per topic."""
    codec = AvroCodec()
    names = {topics.reward_granted: "reward-granted", topics.decisions: "referral-decisions"}
    out: dict[str, list[Record]] = {name: [] for name in names.values()}
    with ReadProgress("reading outputs", quiet=quiet) as progress:
        async for record in read_topics(bootstrap, list(names), progress=progress):
            contract = names[record.topic]
            out[contract].append(codec.decode_record(contract, record.value or b""))
    return out
