"""Crash consistency in the shell (RULES.md R13): a batch's state reaches the table only
through its changelog records, which the agents ask for once the batch's outputs are
acknowledged, and reaches local storage only once those records are (`store`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.streams import current_event
from faust.types import TP

from streams.app.delivery import Outgoing
from streams.app.staging import FaustTableStore, StagedTable, as_current


class FakeTable(dict[bytes, bytes]):
    """A table store stand-in that records each write's partition and persisted offsets."""

    changelog = "t-changelog"

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[bytes, int]] = []
        self.offsets: dict[int, int] = {}

    def write(self, records: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        for partition, key, value in records:
            self.writes.append((key, partition))
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value

    def persisted(self, partition: int, offset: int) -> None:
        self.offsets[partition] = offset


def commit(staged: StagedTable[Any]) -> list[Outgoing]:
    """What an agent does once the batch's outputs are acknowledged: the changelog records
    are sent (here: acknowledged at offsets 0, 1, ... per partition), then stored."""
    records = staged.changelog()
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        assert record.partition is not None
        where = (record.topic, record.partition)
        offsets[where] = offsets.get(where, -1) + 1
    staged.store(offsets)
    return records


class Event:
    """What the staging reads of a Faust event (weak-referenceable, as Faust's are)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def event(partition: int) -> Any:
    return Event(partition)


@pytest.fixture
def staged() -> StagedTable[bytes]:
    return StagedTable(FakeTable(), bytes, bytes)


def test_r13_writes_stay_out_of_the_table_until_commit(staged: StagedTable[bytes]) -> None:
    staged["lead-1"] = b"QUALIFIED"
    assert staged.get("lead-1") == b"QUALIFIED"  # the event reads its own write
    staged.keep(event(3))
    assert staged.get("lead-1") == b"QUALIFIED"  # later events of the batch read it too
    assert staged.table == {}  # a crash now leaves the old state: the batch is recomputed
    records = staged.changelog()
    assert records == [Outgoing("t-changelog", b"lead-1", b"QUALIFIED", 3)]
    assert staged.table == {}  # sent, not acknowledged: still only staged
    staged.store({("t-changelog", 3): 41, ("other-changelog", 3): 7})
    assert staged.table == {b"lead-1": b"QUALIFIED"}
    assert staged.table.writes == [(b"lead-1", 3)]  # under its own event's partition
    assert staged.table.offsets == {3: 41}
    assert staged.pending == 0


def test_r13_a_failed_event_leaves_no_write(staged: StagedTable[bytes]) -> None:
    staged["a"] = b"1"
    staged.keep(event(0))
    staged["a"] = b"2"
    staged["b"] = b"3"
    staged.drop()  # the event went to the dead letters
    assert staged.get("a") == b"1"
    assert staged.get("b") is None
    commit(staged)
    assert staged.table == {b"a": b"1"}


def test_r13_deletions_are_staged_like_writes(staged: StagedTable[bytes]) -> None:
    staged.table.update({b"gone": b"x"})
    del staged["gone"]
    assert "gone" not in staged
    assert staged.table == {b"gone": b"x"}
    staged.keep(event(1))
    assert commit(staged) == [Outgoing("t-changelog", b"gone", None, 1)]  # a tombstone
    assert staged.table == {}


def test_items_see_the_staged_values(staged: StagedTable[bytes]) -> None:
    staged.table.update({b"a": b"old", b"b": b"kept"})
    staged["a"] = b"new"
    staged["c"] = b"added"
    staged.keep(event(0))
    del staged["b"]
    assert dict(staged.items()) == {"a": b"new", "c": b"added"}
    assert len(staged) == 2


def test_commit_refuses_an_event_neither_kept_nor_dropped(staged: StagedTable[bytes]) -> None:
    staged["a"] = b"1"
    with pytest.raises(RuntimeError):
        staged.changelog()


def test_as_current_restores_the_previous_event() -> None:
    outer, inner = event(1), event(2)
    with as_current(outer):
        with as_current(inner):
            assert current_event() is inner
        assert current_event() is outer


def test_r13_a_batch_is_written_into_fausts_rocksdb_partitions_where_its_recovery_reads(
    tmp_path: Path,
) -> None:
    """FaustTableStore on a real Faust table (RocksDB, not started): one write batch per
    partition, deletions in order, the persisted offset Faust's recovery resumes from."""
    app = faust.App(
        "test-store", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table("leads", default=None, partitions=4, key_type=bytes, value_type=bytes)
    store = FaustTableStore(table)
    store.write([(1, b"lead-a", b"1"), (2, b"lead-b", b"2"), (1, b"lead-c", b"3")])
    store.write([(1, b"lead-c", None), (1, b"lead-a", b"4")])
    store.persisted(1, 41)
    data = table.data
    assert data._db_for_partition(1).get(b"lead-a") == b"4"
    assert data._db_for_partition(2).get(b"lead-b") == b"2"
    assert data._db_for_partition(1).get(b"lead-c") is None
    assert data._db_for_partition(2).get(b"lead-a") is None  # only in its own partition
    assert data.persisted_offset(TP(store.changelog, 1)) == 41
    assert dict(data._key_index) == {b"lead-a": 1, b"lead-b": 2}
