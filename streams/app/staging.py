"""State writes held back until the outputs they caused are on the broker (crash consistency).

A step's new state must never become durable before the messages it emitted: a worker killed
in between would come back to a state that already includes the input, and the redelivered
input would then emit nothing (the reward lost for good). So every agent works in rounds:

1. it applies a batch of events to the pure core, each under that event's Faust context;
   writes go to a `StagedTable`, where later events of the round, and later rounds, read
   them back;
2. it hands every output of the round to the producer and `seal`s the round, then goes on to
   the next one while the broker acknowledges (a few rounds in flight at most);
3. rounds commit in the order they were computed: once the broker has acknowledged a round's
   outputs, its state is written, the changelog records first (sent as batches like the
   outputs, and acknowledged), then RocksDB; only after that does Faust ack its events, so no
   offset is committed ahead of its state, and local state is never ahead of the changelog
   (a crash in between leaves Faust's recovery to bring RocksDB up to it). Rounds that
   queued up while the committer was busy commit together, in one changelog trip with each
   key's last value, once all of their outputs are acknowledged.

So a state reaches the changelog only after the outputs of its own round and of every round
before it are on the broker: durable state never includes an input whose outputs could be
missing, whatever moment the worker is killed at.

Faust writes a table key by key: a changelog future, a trip through its producer buffer (one
message at a time) and a RocksDB write of the persisted offset per key. A round writes
hundreds of keys, so `FaustTableStore` writes them straight into the partition's RocksDB and
records the persisted offset once per partition and round: the same bytes in the same places
Faust's own recovery reads (the tables are raw bytes to bytes).

A crash leaves the state of the last round stored: every later round is redelivered and
recomputed against it and gives the same outputs again (identical duplicates, which every
step downstream and billing dedupe on their ids); a key whose newer state reached the
changelog has had that state's outputs acknowledged already.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextlib import contextmanager
from itertools import islice
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from faust.streams import _current_event, current_event
from faust.types import TP, EventT

from streams.app.delivery import Acks, Outgoing

S = TypeVar("S")
_DELETED: Any = object()  # a staged deletion
_ABSENT: Any = object()  # in no staged layer
Offsets = Mapping[tuple[str, int], int]  # the last offset written, per (topic, partition)


@contextmanager
def as_current(event: EventT[Any]) -> Iterator[None]:
    """Run the block as if Faust were processing `event`: tables read and write the partition
    of its source (tables are co-partitioned with the journals that feed them)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _write_batch(store: Any) -> Any:
    """An empty write batch for Faust's RocksDB `store`, of the driver it uses."""
    if store.use_rocksdict:
        import rocksdict

        return rocksdict.WriteBatch(raw_mode=True)
    import rocksdb  # type: ignore[import-not-found]

    return rocksdb.WriteBatch()


class TableStore(Protocol):
    """Where a staged table reads, and writes its batches: local storage by partition, made
    durable by the changelog topic."""

    changelog: str

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, partition: int | None = None) -> Iterable[tuple[bytes, bytes]]:
        """Every stored key and value; only those stored under `partition` when given."""

    def write(self, records: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        """(partition, key, value or None to delete), in order."""

    def persisted(self, partition: int, offset: int) -> None: ...


class FaustTableStore:
    """A Faust table of raw bytes on RocksDB, written a batch at a time."""

    def __init__(self, table: Any) -> None:
        if (table.key_serializer, table.value_serializer) != ("raw", "raw"):
            raise TypeError(f"table {table.name}: batches need raw bytes keys and values")
        self.table = table
        self.changelog: str = table.changelog_topic.get_topic_name()

    def get(self, key: bytes) -> bytes | None:
        """The stored value in the current event's partition (as Faust's RocksDB store reads
        a key for an agent), without Faust's layers around it."""
        event = current_event()
        if event is None:
            value: bytes | None = self.table.get(key)
            return value
        stored: bytes | None = self.table.data._db_for_partition(event.message.partition).get(key)
        return stored

    def items(self, partition: int | None = None) -> Iterable[tuple[bytes, bytes]]:
        if partition is None:
            everything: Iterable[tuple[bytes, bytes]] = self.table.items()
            return everything
        store = self.table.data  # one RocksDB per partition
        stored: Iterable[tuple[bytes, bytes]] = store._visible_items(
            store._db_for_partition(partition)
        )
        return stored

    def write(self, records: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        """One RocksDB write batch per partition (one call and one WAL write, not one per key),
        as Faust's own recovery writes changelog records."""
        store = self.table.data  # faust.stores.rocksdb.Store
        # Faust's key -> partition index serves its own lookups (queries), which fill it on a
        # miss: the agents read by partition (`get`), so a write adds nothing to it (an LRU
        # behind a lock, 1.6 % of the main thread when every write did). A deleted key leaves.
        key_index = store._key_index
        batches: dict[int, Any] = {}
        for partition, key, value in records:
            batch = batches.get(partition)
            if batch is None:
                batches[partition] = batch = _write_batch(store)
            if value is None:
                batch.delete(key)
                key_index.pop(key, None)
            else:
                batch.put(key, value)
        for partition, batch in batches.items():
            store._db_for_partition(partition).write(batch)

    def persisted(self, partition: int, offset: int) -> None:
        """Recovery reads the changelog from here on (Faust's own bookkeeping)."""
        self.table.data.set_persisted_offset(TP(self.changelog, partition), offset)


class StagedTable(MutableMapping[str, S], Generic[S]):
    """A table of bytes seen as str -> value, whose writes wait for their round's commit.

    Writes go through three layers before the table: the event's own (`keep` moves them into
    the round once it was applied, `drop` forgets them when it failed: it goes to the dead
    letters with no trace in state), the round being computed, and the rounds in flight
    (`seal`ed, their outputs on their way: `changelog` then `store` the oldest). Reads see
    the newest layer holding the key.
    """

    def __init__(
        self, table: TableStore, decode: Callable[[bytes], S], encode: Callable[[S], bytes]
    ) -> None:
        self.table = table
        self.decode = decode
        self.encode = encode
        self._event: dict[str, Any] = {}
        # key -> (value or _DELETED, the event whose partition holds the key)
        self._batch: dict[str, tuple[Any, EventT[Any]]] = {}
        # the rounds in flight, oldest first, each with its number
        self._sealed: deque[tuple[int, dict[str, tuple[Any, EventT[Any]]]]] = deque()
        self._rounds = 0
        # key -> (value or _DELETED, the newest round in flight that wrote it)
        self._unstored: dict[str, tuple[Any, int]] = {}
        # the oldest rounds as sent to the changelog: the newest one's number and their
        # (partition, key, value or None), each key once
        self._encoded: tuple[int, list[tuple[int, bytes, bytes | None]]] = (0, [])

    def _staged(self, key: str) -> Any:
        """The key's value in the newest layer holding it: _DELETED if deleted there, _ABSENT
        if no layer holds it (the table has it as stored)."""
        value = self._event.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        staged = self._batch.get(key)
        if staged is not None:
            return staged[0]
        unstored = self._unstored.get(key)
        return unstored[0] if unstored is not None else _ABSENT

    def get(self, key: str, default: Any = None) -> Any:
        value = self._staged(key)
        if value is _ABSENT:
            data = self.table.get(key.encode())
            return default if data is None else self.decode(data)
        return default if value is _DELETED else value

    def __getitem__(self, key: str) -> S:
        value = self.get(key, _DELETED)
        if value is _DELETED:
            raise KeyError(key)
        result: S = value
        return result

    def __setitem__(self, key: str, value: S) -> None:
        self._event[key] = value

    def __delitem__(self, key: str) -> None:
        if self.get(key, _DELETED) is _DELETED:
            raise KeyError(key)
        self._event[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def items(self) -> Iterator[tuple[str, S]]:  # type: ignore[override]
        """Every key with its value as staged, the table's keys first (for rebuilds only)."""
        return self._items(self.table.items(), lambda key: True)

    def items_in(
        self, partition: int, partition_of: Callable[[str], int]
    ) -> Iterator[tuple[str, S]]:
        """The keys of one partition (`partition_of` gives a key's) with their values as
        staged: what a rebuild of that partition's state reads, and no other partition's."""
        return self._items(self.table.items(partition), lambda key: partition_of(key) == partition)

    def _items(
        self, stored: Iterable[tuple[bytes, bytes]], wanted: Callable[[str], bool]
    ) -> Iterator[tuple[str, S]]:
        seen: set[str] = set()
        for raw_key, data in stored:
            key = raw_key.decode()
            seen.add(key)
            value = self._staged(key)
            if value is _ABSENT:
                yield key, self.decode(data)
            elif value is not _DELETED:
                yield key, value
        for key in [*self._unstored, *self._batch, *self._event]:
            if key not in seen and wanted(key):
                seen.add(key)
                value = self._staged(key)
                if value is not _DELETED:
                    yield key, value

    @property
    def pending(self) -> int:
        """Writes staged and not stored yet: the round being computed and those in flight."""
        return len(self._batch) + sum(len(writes) for _, writes in self._sealed)

    def keep(self, event: EventT[Any]) -> None:
        """The event was applied: its writes join the round, under its partition."""
        for key, value in self._event.items():
            self._batch[key] = (value, event)
        self._event.clear()

    def drop(self) -> None:
        """The event failed: forget what it wrote."""
        self._event.clear()

    def discard(self) -> None:
        """Forget every write not stored, in flight too: their rounds' events were never
        acked, so they come again (an agent starting over reads the table as stored)."""
        self._event.clear()
        self._batch = {}
        self._sealed.clear()
        self._unstored.clear()
        self._encoded = (0, [])

    def seal(self) -> None:
        """The round is computed: its writes wait in flight (still read) for its commit, and
        the next round starts empty."""
        if self._event:
            raise RuntimeError("a round with an event's writes neither kept nor dropped")
        self._rounds += 1
        number, writes = self._rounds, self._batch
        self._sealed.append((number, writes))
        for key, (value, _) in writes.items():
            self._unstored[key] = (value, number)
        self._batch = {}

    def changelog(self, rounds: int = 1) -> list[Outgoing]:
        """The `rounds` oldest rounds in flight as changelog records, each key once with the
        newest of their values, in the partition of the event that wrote it; ask only once
        those rounds' outputs are acknowledged, send the records, then call `store`."""
        if not 0 < rounds <= len(self._sealed):
            raise RuntimeError(f"{rounds} rounds asked for, {len(self._sealed)} in flight")
        number, writes = self._sealed[rounds - 1]
        if rounds > 1:  # a key written by several keeps its last value only
            writes = {}
            for _, written in islice(self._sealed, rounds):
                writes.update(written)
        encoded = [
            (
                event.message.partition,
                key.encode(),
                None if value is _DELETED else self.encode(value),
            )
            for key, (value, event) in writes.items()
        ]
        self._encoded = (number, encoded)
        topic = self.table.changelog
        return [Outgoing(topic, key, data, partition) for partition, key, data in encoded]

    def store(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """The changelog holds the oldest rounds in flight (sent from `changelog`) up to
        `offsets` (any topics'): write them into local storage, which a crash before this
        leaves to Faust's recovery from the changelog, and end those rounds."""
        newest, encoded = self._encoded
        if not self._sealed or not self._sealed[0][0] <= newest <= self._sealed[-1][0]:
            raise RuntimeError("a round stored before its changelog was asked for")
        self.table.write(encoded)
        topic = self.table.changelog
        for (written, partition), offset in offsets.items():
            if written == topic:
                self.table.persisted(partition, offset)
        self._encoded = (0, [])
        unstored = self._unstored
        while self._sealed and self._sealed[0][0] <= newest:
            number, writes = self._sealed.popleft()
            for key in writes:
                if unstored[key][1] == number:  # no later round in flight wrote it since
                    del unstored[key]


class InFlight(NamedTuple):
    """A round computed and sealed: its events, and its outputs handed to the producer."""

    events: list[EventT[Any]]
    outputs: Acks


async def commit_in_order(
    rounds: asyncio.Queue[InFlight | None],
    tables: Sequence[StagedTable[Any]],
    acknowledged: Callable[[Acks], Awaitable[Offsets]],
    deliver: Callable[[list[Outgoing]], Awaitable[Offsets]],
    stored: Callable[[InFlight], Awaitable[None]],
) -> None:
    """Commit an agent's rounds in flight, oldest first, until a None: the round taken and
    those queued behind it together (one changelog trip for all, each key once): wait for
    their outputs to be `acknowledged`, in order, `deliver` their changelog records (sent
    and acknowledged), write them into local storage, then `stored` each (which acks its
    events). Every table's sealed rounds are the queue's, in the same order."""
    while (round_ := await rounds.get()) is not None:
        together = [round_, *_queued(rounds)]
        for each in together:
            await acknowledged(each.outputs)
        changelog = [record for table in tables for record in table.changelog(len(together))]
        offsets = await deliver(changelog)
        for table in tables:
            table.store(offsets)
        for each in together:
            await stored(each)
        for _ in together[1:]:  # their places were kept: the agent ran no further ahead
            rounds.get_nowait()


def _queued(rounds: asyncio.Queue[InFlight | None]) -> list[InFlight]:
    """The rounds queued, up to a stop (None), left in the queue."""
    queued: list[InFlight] = []
    for each in rounds._queue:  # type: ignore[attr-defined]  # asyncio.Queue's deque
        if each is None:
            break
        queued.append(each)
    return queued
