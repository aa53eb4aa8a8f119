"""State writes held back until the outputs they caused are on the broker (crash consistency).

A step's new state must never become durable before the messages it emitted: a worker killed
in between would come back to a state that already includes the input, and the redelivered
input would then emit nothing (the reward lost for good). So every agent works in rounds:

1. it applies a batch of events to the pure core, each under that event's Faust context;
   writes go to a `StagedTable`, where later events of the batch read them back;
2. it sends every output of the batch and waits until the broker has acknowledged them all;
3. only then does it write the staged states: the changelog records first, sent as batches
   like the outputs and acknowledged, then RocksDB; only after that does Faust ack the
   events, so no offset is committed ahead of its state, and local state is never ahead of
   the changelog (a crash in between leaves Faust's recovery to bring RocksDB up to it).

Faust writes a table key by key: a changelog future, a trip through its producer buffer (one
message at a time) and a RocksDB write of the persisted offset per key. A round writes
hundreds of keys, so `FaustTableStore` writes them straight into the partition's RocksDB and
records the persisted offset once per partition and round: the same bytes in the same places
Faust's own recovery reads (the tables are raw bytes to bytes).

A crash before 3 leaves the old state: the redelivered batch is recomputed against it and
gives the same outputs again (identical duplicates, which every step downstream and billing
dedupe on their ids). A crash after 3 leaves a state whose outputs are already acknowledged.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from faust.streams import _current_event, current_event
from faust.types import TP, EventT

from streams.app.delivery import Outgoing

S = TypeVar("S")
_DELETED: Any = object()  # a staged deletion


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

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...

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

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        items: Iterable[tuple[bytes, bytes]] = self.table.items()
        return items

    def write(self, records: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        """One RocksDB write batch per partition (one call and one WAL write, not one per key),
        as Faust's own recovery writes changelog records."""
        store = self.table.data  # faust.stores.rocksdb.Store
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
                key_index[key] = partition
        for partition, batch in batches.items():
            store._db_for_partition(partition).write(batch)

    def persisted(self, partition: int, offset: int) -> None:
        """Recovery reads the changelog from here on (Faust's own bookkeeping)."""
        self.table.data.set_persisted_offset(TP(self.changelog, partition), offset)


class StagedTable(MutableMapping[str, S], Generic[S]):
    """A table of bytes seen as str -> value, whose writes wait for `commit`.

    Reads see the event's own writes first, then the batch's, then the table. `keep` moves an
    event's writes into the batch once it was applied; `drop` forgets them when it failed (it
    goes to the dead letters with no trace in state).
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
        # the batch as sent to the changelog: (partition, key, value or None for a deletion)
        self._encoded: list[tuple[int, bytes, bytes | None]] = []

    def _staged(self, key: str) -> Any:
        value = self._event.get(key, _DELETED)
        if value is not _DELETED or key in self._event:
            return value
        staged = self._batch.get(key)
        return staged[0] if staged is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._event or key in self._batch:
            value = self._staged(key)
            return default if value is _DELETED else value
        data = self.table.get(key.encode())
        return default if data is None else self.decode(data)

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
        seen: set[str] = set()
        for raw_key, data in self.table.items():
            key = raw_key.decode()
            seen.add(key)
            if key in self._event or key in self._batch:
                value = self._staged(key)
                if value is not _DELETED:
                    yield key, value
            else:
                yield key, self.decode(data)
        for key in [*self._batch, *self._event]:
            if key not in seen:
                seen.add(key)
                value = self._staged(key)
                if value is not _DELETED:
                    yield key, value

    @property
    def pending(self) -> int:
        """Writes staged for the batch."""
        return len(self._batch)

    def keep(self, event: EventT[Any]) -> None:
        """The event was applied: its writes join the batch, under its partition."""
        for key, value in self._event.items():
            self._batch[key] = (value, event)
        self._event.clear()

    def drop(self) -> None:
        """The event failed: forget what it wrote."""
        self._event.clear()

    def changelog(self) -> list[Outgoing]:
        """The batch as changelog records, each key in its event's partition; ask only once
        the batch's outputs are acknowledged, send them, then call `store`."""
        if self._event:
            raise RuntimeError("a batch with an event's writes neither kept nor dropped")
        self._encoded = [
            (
                event.message.partition,
                key.encode(),
                None if value is _DELETED else self.encode(value),
            )
            for key, (value, event) in self._batch.items()
        ]
        topic = self.table.changelog
        return [Outgoing(topic, key, data, partition) for partition, key, data in self._encoded]

    def store(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """The changelog holds the batch (sent from `changelog`) up to `offsets` (any topics'):
        write it into local storage, which a crash before this leaves to Faust's recovery
        from the changelog, and end the batch."""
        self.table.write(self._encoded)
        topic = self.table.changelog
        for (written, partition), offset in offsets.items():
            if written == topic:
                self.table.persisted(partition, offset)
        self._encoded = []
        self._batch.clear()
