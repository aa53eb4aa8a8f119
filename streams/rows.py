"""Records as JSON rows: a record is the array of its fields' values, in field order.

The journals and the changelogs carry a record in every message and state they hold, and
turning records into named JSON objects and back (`streams.plain`) was the larger part of
applying a message. A row names no field: orjson writes it straight from the record (a named
tuple's own items, a dataclass's fields in order), and reading it back is one positional call
per record. Enums are written as their values, sets as sorted arrays, records inside records
as rows.

A row is read by the class it was written from, so a class's layout is part of the format:
fields may only be appended, each with a default (a row written before holds fewer values,
and the class fills in the rest); any other change needs a new version of what holds the row
(`streams.rules.snapshot`, `streams.app.journal`). `layout` gives what a test pins.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from operator import attrgetter
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import orjson

from streams.plain import converter, field_names, is_record_type

T = TypeVar("T")
Reader = Callable[[list[Any]], Any]
# orjson would write a dataclass as an object: handed to `_row` instead, like a named tuple.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS

_ROW_OF: dict[type[Any], Callable[[Any], Any]] = {}  # record class -> its row, as orjson writes it
_READERS: dict[type[Any], Reader] = {}


class RowError(ValueError):
    """A row that does not fit the class it is read as."""


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value`, every record in it (at any depth) as a row."""
    return orjson.dumps(value, default=_row, option=_OPTIONS)


def _row(value: Any) -> Any:
    """What orjson writes for a value it does not know: a record's row, a set's sorted array."""
    row_of = _ROW_OF.get(type(value))
    if row_of is None:
        cls = type(value)
        if is_dataclass(cls):
            names = field_names(cls)
            # attrgetter of one name returns the value itself, not a 1-tuple
            get = attrgetter(*names)
            row_of = get if len(names) > 1 else (lambda record: (get(record),))
        elif is_record_type(cls):
            row_of = tuple  # a named tuple is its row
        elif isinstance(value, frozenset | set):
            return sorted(value)
        else:
            raise TypeError(f"{cls.__name__} cannot be written as a row")
        _ROW_OF[cls] = row_of
    return row_of(value)


def read(cls: type[T], row: Any) -> T:
    """The record of class `cls` a row holds (as `orjson.loads` gives it back)."""
    result: T = reader(cls)(row)
    return result


def reader(cls: type[Any]) -> Reader:
    """How a row becomes a `cls`, decided once per class: only the fields whose value needs
    converting (records, enums, sets, tuples) are looked at."""
    read_row = _READERS.get(cls)
    if read_row is None:
        hints = get_type_hints(cls)
        names = field_names(cls)
        converted = [
            (index, convert)
            for index, name in enumerate(names)
            if (convert := converter(hints[name], reader)) is not None
        ]
        width = len(names)

        def read_row(row: list[Any]) -> Any:
            if type(row) is not list or len(row) > width:
                raise RowError(f"{cls.__name__} takes a row of at most {width} values: {row!r}")
            if converted:  # in place: the row is the list orjson.loads just made
                given = len(row)
                for index, convert in converted:
                    if index < given and (value := row[index]) is not None:
                        row[index] = convert(value)
            return cls(*row)

        _READERS[cls] = read_row
    return read_row


# A row's layout: its fields in order, each "name" or "name=" (it has a default), or
# ("name", layout) / ("name=", layout) for a field that holds a record.
Field = str | tuple[str, "Layout"]
Layout = tuple[Field, ...]


def layout(cls: type[Any]) -> Layout:
    """The fields a row of `cls` holds, in order, with the layout of each record inside it and
    whether the field has a default: what must stay for rows already written to be read."""
    hints = get_type_hints(cls)
    if is_dataclass(cls):
        defaults = {f.name for f in fields(cls) if f.init and f.default is not MISSING}
    else:
        defaults = set(getattr(cls, "_field_defaults", {}))
    shape: list[Field] = []
    for name in field_names(cls):
        label = f"{name}=" if name in defaults else name
        inner = _inner_layout(hints[name])
        shape.append(label if inner is None else (label, inner))
    return tuple(shape)


def _inner_layout(hint: Any) -> Layout | None:
    if is_record_type(hint):
        return layout(typing.cast(type[Any], hint))
    if get_origin(hint) in (tuple, frozenset, typing.Union, types.UnionType):
        for arg in get_args(hint):
            if (inner := _inner_layout(arg)) is not None:
                return inner
    return None


def _split(field: Field) -> tuple[str, Layout | None]:
    if isinstance(field, str):
        return field.rstrip("="), None
    return field[0].rstrip("="), field[1]


def readable_after(written: Layout, current: Layout) -> str | None:
    """Why rows written with layout `written` cannot be read as `current`, or None if they can
    (the same fields in the same places, records inside alike, later fields only appended
    with a default)."""
    if len(current) < len(written):
        return f"fields removed: {[_split(f)[0] for f in written[len(current) :]]}"
    for old, new in zip(written, current, strict=False):
        (name, inner), (now, now_inner) = _split(old), _split(new)
        if name != now:
            return f"field {name!r} is now {now!r}"
        if inner != now_inner:
            if inner is None or now_inner is None:
                return f"field {name!r} changed between record and value"
            why = readable_after(inner, now_inner)
            if why is not None:
                return f"in {name!r}: {why}"
    for field in current[len(written) :]:
        label = field if isinstance(field, str) else field[0]
        if not label.endswith("="):
            return f"appended field {label!r} has no default"
    return None
