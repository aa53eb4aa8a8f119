"""Crash consistency in the shell (RULES.md R13): a batch's state reaches the table only
through its changelog records, which the agents ask for once the batch's outputs are
acknowledged, and reaches local storage only once those records are (`store`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.streams import current_event
from faust.types import TP

from streams.app.delivery import Acks, Outgoing
from streams.app.staging import FaustTableStore, InFlight, StagedTable, as_current, commit_in_order


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
    staged.seal()
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
    staged.seal()
    assert staged.get("lead-1") == b"QUALIFIED"  # in flight: the next round reads it
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


class PartitionedTable(FakeTable):
    """A table store stand-in that lists a partition's keys: those last written under it."""

    def items(self, partition: int | None = None) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        where = {key: written for key, written in self.writes}
        return [(k, v) for k, v in super().items() if partition in (None, where[k])]


def test_r13_a_partition_s_items_are_its_stored_and_staged_keys_and_no_other_s() -> None:
    """What a lead shard's rebuild reads (its timers): one partition's leads, as staged."""
    staged: StagedTable[bytes] = StagedTable(PartitionedTable(), bytes, bytes)
    for key, partition in (("a", 0), ("b", 1), ("gone", 0), ("c", 1)):
        staged[key] = b"stored"
        staged.keep(event(partition))
    commit(staged)
    staged["a"] = b"in flight"
    del staged["gone"]
    staged.keep(event(0))
    staged.seal()  # a round in flight
    staged["new"] = b"in the round"
    staged.keep(event(0))
    staged["c"] = b"in the round"
    staged["other"] = b"in the round"
    staged.keep(event(1))
    partition_of = {"a": 0, "b": 1, "c": 1, "gone": 0, "new": 0, "other": 1}.__getitem__
    assert dict(staged.items_in(0, partition_of)) == {"a": b"in flight", "new": b"in the round"}
    assert dict(staged.items_in(1, partition_of)) == {
        "b": b"stored",
        "c": b"in the round",
        "other": b"in the round",
    }
    assert dict(staged.items()) == {
        **dict(staged.items_in(0, partition_of)),
        **dict(staged.items_in(1, partition_of)),
    }


def test_a_round_with_an_event_neither_kept_nor_dropped_is_not_sealed(
    staged: StagedTable[bytes],
) -> None:
    staged["a"] = b"1"
    with pytest.raises(RuntimeError):
        staged.seal()


def test_r13_rounds_in_flight_are_read_newest_first_and_stored_oldest_first(
    staged: StagedTable[bytes],
) -> None:
    staged.table.update({b"a": b"0", b"gone": b"x"})
    staged["a"] = b"1"
    staged["b"] = b"1"
    staged.keep(event(0))
    staged.seal()  # round 1 in flight
    staged["a"] = b"2"
    del staged["gone"]
    staged.keep(event(0))
    staged.seal()  # round 2 in flight, over round 1
    assert (staged.get("a"), staged.get("b"), staged.get("gone")) == (b"2", b"1", None)
    assert dict(staged.items()) == {"a": b"2", "b": b"1"}
    assert staged.pending == 4

    assert staged.changelog() == [  # round 1 only
        Outgoing("t-changelog", b"a", b"1", 0),
        Outgoing("t-changelog", b"b", b"1", 0),
    ]
    staged.store({("t-changelog", 0): 1})
    assert staged.table == {b"a": b"1", b"b": b"1", b"gone": b"x"}
    # round 2 still wins where it wrote: round 1's store did not unstage its keys
    assert (staged.get("a"), staged.get("gone")) == (b"2", None)

    assert staged.changelog() == [
        Outgoing("t-changelog", b"a", b"2", 0),
        Outgoing("t-changelog", b"gone", None, 0),
    ]
    staged.store({("t-changelog", 0): 3})
    assert staged.table == {b"a": b"2", b"b": b"1"}
    assert staged.pending == 0
    assert staged.table.offsets == {0: 3}


def test_r13_a_round_is_stored_only_after_its_changelog_was_asked_for(
    staged: StagedTable[bytes],
) -> None:
    staged["a"] = b"1"
    staged.keep(event(0))
    staged.seal()
    with pytest.raises(RuntimeError):
        staged.store({})
    assert staged.table == {}
    with pytest.raises(RuntimeError):
        StagedTable(FakeTable(), bytes, bytes).changelog()  # nothing in flight


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
    partition, deletions in order, the persisted offset Faust's recovery resumes from, and
    what Faust's own lookups (the queries) then read."""
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
    # Faust's queries find what a batch wrote, with no event (they search every partition)
    assert dict(data._key_index) == {}
    assert (data._get(b"lead-a"), data._get(b"lead-b"), data._get(b"lead-c")) == (b"4", b"2", None)
    assert dict(data._key_index) == {b"lead-a": 1, b"lead-b": 2}
    # a partition's items: what it stores, read from its own RocksDB alone
    assert dict(store.items(1)) == {b"lead-a": b"4"}
    assert dict(store.items(2)) == {b"lead-b": b"2"}
    assert dict(store.items(3)) == {}


def test_r13_rounds_in_flight_commit_in_order_after_their_outputs_in_one_changelog_trip() -> None:
    """Round 2's outputs are acknowledged before round 1's: nothing moves before round 1's;
    then the two rounds queued together go in one changelog trip (the key both wrote once,
    with round 2's value), and are stored oldest first; their places in the queue are kept
    until then, so the agent never runs further ahead than the queue allows."""

    async def scenario() -> tuple[list[str], FakeTable]:
        loop = asyncio.get_running_loop()
        staged = StagedTable(FakeTable(), bytes, bytes)
        journal: list[str] = []
        acks = {n: loop.create_future() for n in (1, 2)}

        async def acknowledged(outputs: Acks) -> dict[tuple[str, int], int]:
            future = outputs[0][0]
            await future
            journal.append(f"outputs {future.result()}")
            return {}

        async def deliver(records: list[Outgoing]) -> dict[tuple[str, int], int]:
            journal.append("changelog " + ",".join(str(r.value) for r in records))
            return {("t-changelog", 0): len(journal)}

        async def stored(round_: InFlight) -> None:
            journal.append(f"stored {len(round_.events)}")

        rounds: asyncio.Queue[InFlight | None] = asyncio.Queue(maxsize=2)
        committer = asyncio.ensure_future(
            commit_in_order(rounds, [staged], acknowledged, deliver, stored)
        )
        for n in (1, 2):
            staged["lead"] = str(n).encode()
            staged.keep(event(0))
            staged.seal()
            await rounds.put(InFlight([event(0)] * n, [(acks[n], 1)]))
        acks[2].set_result(2)
        await asyncio.sleep(0.01)
        assert journal == []  # round 1 is oldest: nothing moves before its outputs
        assert staged.get("lead") == b"2"
        assert rounds.qsize() == 1  # round 2, committing with round 1, keeps its place
        acks[1].set_result(1)
        await asyncio.sleep(0.01)
        assert rounds.empty()
        await rounds.put(None)
        await committer
        return journal, staged.table

    journal, table = asyncio.run(scenario())
    assert journal == [
        "outputs 1",
        "outputs 2",
        "changelog b'2'",
        "stored 1",
        "stored 2",
    ]
    assert table == {b"lead": b"2"}
    assert table.offsets == {0: 3}


def test_r13_rounds_queued_after_a_commit_began_commit_after_it() -> None:
    """A round queued while the rounds before it are committing waits for them: its own
    outputs, then its own changelog trip."""

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        staged = StagedTable(FakeTable(), bytes, bytes)
        journal: list[str] = []
        changelog_sent = loop.create_future()
        release = loop.create_future()

        async def acknowledged(outputs: Acks) -> dict[tuple[str, int], int]:
            journal.append(f"outputs {outputs[0][1]}")
            return {}

        async def deliver(records: list[Outgoing]) -> dict[tuple[str, int], int]:
            journal.append("changelog " + ",".join(str(r.value) for r in records))
            if not changelog_sent.done():
                changelog_sent.set_result(None)
                await release
            return {("t-changelog", 0): len(journal)}

        async def stored(round_: InFlight) -> None:
            journal.append(f"stored {len(round_.events)}")

        def sealed(n: int) -> InFlight:
            staged[f"lead-{n}"] = str(n).encode()
            staged.keep(event(0))
            staged.seal()
            done = loop.create_future()
            done.set_result(None)
            return InFlight([event(0)] * n, [(done, n)])

        rounds: asyncio.Queue[InFlight | None] = asyncio.Queue(maxsize=3)
        committer = asyncio.ensure_future(
            commit_in_order(rounds, [staged], acknowledged, deliver, stored)
        )
        await rounds.put(sealed(1))
        await changelog_sent  # round 1's changelog is on its way
        await rounds.put(sealed(2))
        release.set_result(None)
        await rounds.put(None)
        await committer
        return journal

    assert asyncio.run(scenario()) == [
        "outputs 1",
        "changelog b'1'",
        "stored 1",
        "outputs 2",
        "changelog b'2'",
        "stored 2",
    ]


def test_r13_rounds_sent_to_the_changelog_together_keep_each_keys_last_value(
    staged: StagedTable[bytes],
) -> None:
    staged.table.update({b"gone": b"x"})
    for n, writes in enumerate(({"a": b"1", "b": b"1"}, {"a": b"2", "gone": None}, {"c": b"3"})):
        for key, value in writes.items():
            if value is None:
                del staged[key]
            else:
                staged[key] = value
        staged.keep(event(n % 2))
        staged.seal()
    assert staged.changelog(2) == [
        Outgoing("t-changelog", b"a", b"2", 1),
        Outgoing("t-changelog", b"b", b"1", 0),
        Outgoing("t-changelog", b"gone", None, 1),
    ]
    staged.store({("t-changelog", 1): 9})
    assert staged.table == {b"a": b"2", b"b": b"1"}
    assert staged.table.offsets == {1: 9}
    assert staged.get("c") == b"3"  # round 3, still in flight
    assert staged.pending == 1
    with pytest.raises(RuntimeError):
        staged.changelog(2)  # one round left


def test_r13_an_agent_starting_over_discards_what_it_never_stored(
    staged: StagedTable[bytes],
) -> None:
    staged.table.update({b"a": b"stored"})
    staged["a"] = b"in flight"
    staged.keep(event(0))
    staged.seal()
    staged["a"] = b"computing"
    staged.keep(event(0))
    staged.discard()
    assert staged.get("a") == b"stored"
    assert staged.pending == 0
    with pytest.raises(RuntimeError):
        staged.changelog()  # nothing of the discarded rounds can be stored any more
