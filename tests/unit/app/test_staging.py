"""Crash consistency in the shell (RULES.md R13): a batch's state reaches the table only when
`commit` is called, which the agents do once the batch's outputs are acknowledged."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import current_event

from streams.app.staging import StagedTable, as_current


class FakeTable(dict[bytes, bytes]):
    """A Faust table stand-in that records the partition of the event each write was under."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[bytes, int]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        assert event is not None, "a table write outside an event's context"
        self.writes.append((key, event.message.partition))
        super().__setitem__(key, value)


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
    staged.commit()
    assert staged.table == {b"lead-1": b"QUALIFIED"}
    assert staged.table.writes == [(b"lead-1", 3)]  # under its own event's partition
    assert staged.pending == 0


def test_r13_a_failed_event_leaves_no_write(staged: StagedTable[bytes]) -> None:
    staged["a"] = b"1"
    staged.keep(event(0))
    staged["a"] = b"2"
    staged["b"] = b"3"
    staged.drop()  # the event went to the dead letters
    assert staged.get("a") == b"1"
    assert staged.get("b") is None
    staged.commit()
    assert staged.table == {b"a": b"1"}


def test_r13_deletions_are_staged_like_writes(staged: StagedTable[bytes]) -> None:
    staged.table.update({b"gone": b"x"})
    del staged["gone"]
    assert "gone" not in staged
    assert staged.table == {b"gone": b"x"}
    staged.keep(event(1))
    staged.commit()
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
        staged.commit()


def test_as_current_restores_the_previous_event() -> None:
    outer, inner = event(1), event(2)
    with as_current(outer):
        with as_current(inner):
            assert current_event() is inner
        assert current_event() is outer
