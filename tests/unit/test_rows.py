"""Records as JSON rows (streams.rows): what the journals and changelogs hold since round 9."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import orjson
import pytest

from streams.contracts.records import RewardKind
from streams.rows import RowError, dumps, layout, read, readable_after


@dataclass(frozen=True, slots=True)
class One:
    at: int


class Inner(NamedTuple):
    kind: RewardKind
    tags: frozenset[str] = frozenset()


class Outer(NamedTuple):
    name: str
    inner: Inner | None
    ones: tuple[One, ...] = ()
    note: str | None = None


def test_a_record_is_the_array_of_its_fields_at_any_depth() -> None:
    value = Outer("x", Inner(RewardKind.GIFT_VOUCHER, frozenset({"b", "a"})), (One(1), One(2)))
    assert dumps(value) == b'["x",["GIFT_VOUCHER",["a","b"]],[[1],[2]],null]'
    assert read(Outer, orjson.loads(dumps(value))) == value
    assert read(Outer, orjson.loads(dumps(Outer("y", None)))) == Outer("y", None)


def test_a_row_written_before_a_field_was_appended_takes_its_default() -> None:
    assert read(Outer, ["x", None]) == Outer("x", None, (), None)
    assert read(Outer, ["x", ["INVOICE_REDUCTION"]]) == Outer(
        "x", Inner(RewardKind.INVOICE_REDUCTION)
    )


@pytest.mark.parametrize("row", [["x", None, [], None, "more"], {"name": "x"}, "x"])
def test_a_row_that_does_not_fit_its_class_is_refused(row: object) -> None:
    with pytest.raises(RowError):
        read(Outer, row)


def test_a_value_with_no_row_is_refused() -> None:
    with pytest.raises(TypeError):
        dumps(object())


def test_layouts_say_which_changes_keep_old_rows_readable() -> None:
    written = layout(Outer)
    assert written == (
        "name",
        ("inner", ("kind", "tags=")),
        ("ones=", ("at",)),
        "note=",
    )
    assert readable_after(written, written) is None
    assert readable_after(written, (*written, "extra=")) is None
    assert readable_after(written, (*written, "extra")) == "appended field 'extra' has no default"
    assert readable_after(written, written[:3]) == "fields removed: ['note']"
    swapped = (written[0], written[1], written[3], written[2])
    assert readable_after(written, swapped) == "field 'ones' is now 'note'"
    deeper = ("name", ("inner", ("kind", "tags=", "more=")), *written[2:])
    assert readable_after(written, deeper) is None
    reordered = ("name", ("inner", ("tags=", "kind")), *written[2:])
    assert readable_after(written, reordered) == "in 'inner': field 'kind' is now 'tags'"
    flattened = ("name", "inner", *written[2:])
    assert readable_after(written, flattened) == "field 'inner' changed between record and value"
