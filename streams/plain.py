"""Plain-data conversion of records (dataclasses, named tuples): dicts of str, int, bool, None,
lists.

Records (to and from Avro/JSON) and the core's state (to and from a changelog) both go through
here, so every shape is converted one way. A conversion plan is computed once per class.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from functools import partial
from typing import Any, NamedTuple, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")
_Convert = Callable[[Any], Any] | None


class _Shape(NamedTuple):
    """How plain data becomes a record class, decided once per class."""

    names: frozenset[str]  # every field the class takes
    converted: list[tuple[str, Callable[[Any], Any]]]  # the fields whose value is converted


_FROM: dict[type[Any], _Shape] = {}
_TO: dict[type[Any], Callable[[Any], Any]] = {}  # record class -> its conversion to plain data
_SCALARS = (str, int, bool, float, type(None))


def is_record_type(hint: Any) -> bool:
    """A dataclass or a NamedTuple: a record with named, typed fields."""
    return is_dataclass(hint) or (
        isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")
    )


def field_names(cls: type[Any]) -> list[str]:
    if is_dataclass(cls):
        return [f.name for f in fields(cls) if f.init]
    return list(cls._fields)


def converter(hint: Any, of_record: Callable[[type[Any]], Callable[[Any], Any]]) -> _Convert:
    """How a field's JSON value becomes the value of a field of type `hint`, decided once from
    the type (None: it already is); a record by `of_record(its class)`."""
    origin = get_origin(hint)
    if is_record_type(hint):
        return of_record(typing.cast(type[Any], hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if origin in (tuple, frozenset):
        collection = typing.cast(Callable[[Any], Any], origin)
        inner = converter(get_args(hint)[0], of_record)
        if inner is None:
            return collection
        each = inner
        return lambda v: collection(each(x) for x in v)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return converter(args[0], of_record)
    return None


def _from_record(cls: type[Any]) -> Callable[[Any], Any]:
    return lambda value: from_plain(cls, value)


def _shape(cls: type[Any]) -> _Shape:
    shape = _FROM.get(cls)
    if shape is None:
        hints = get_type_hints(cls)
        names = field_names(cls)
        plan = [(name, converter(hints[name], _from_record)) for name in names]
        converted = [(name, convert) for name, convert in plan if convert is not None]
        shape = _FROM[cls] = _Shape(frozenset(names), converted)
    return shape


def from_plain(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from plain data; absent keys take the dataclass default, unknown keys are
    ignored."""
    shape = _shape(cls)
    names = shape.names
    # the plain data as given (only known fields, always from this code), a few converted
    kwargs = dict(data) if data.keys() <= names else {k: v for k, v in data.items() if k in names}
    for name, convert in shape.converted:
        value = kwargs.get(name)
        if value is not None:
            kwargs[name] = convert(value)
    return cls(**kwargs)


def to_plain(value: Any) -> Any:
    """Plain data of a dataclass (recursively); enums become their values, sets sorted lists."""
    convert = _TO.get(type(value))
    return convert(value) if convert is not None else _any_to_plain(value)


def _any_to_plain(value: Any) -> Any:
    """The conversion decided by the value itself, for fields whose type says too little."""
    if is_record_type(type(value)):
        return _record_to_plain(type(value))(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(to_plain(v) for v in value)
    return value


def _to_converter(hint: Any) -> _Convert:
    """How a field of type `hint` becomes plain data, decided once from the type (None: the
    value is plain already); `_any_to_plain` wherever the type leaves it open."""
    origin, args = get_origin(hint), get_args(hint)
    if hint in _SCALARS:
        return None
    if is_record_type(hint):
        return _record_to_plain(typing.cast(type[Any], hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_value
    if origin in (tuple, list) and (origin is list or (len(args) == 2 and args[1] is ...)):
        item = _to_converter(args[0]) if args else _any_to_plain
        if item is None:
            return list
        each = item
        return lambda values: [each(v) for v in values]
    if origin in (frozenset, set) and args:
        member = _to_converter(args[0])
        if member is None:
            return sorted
        every = member
        return lambda values: sorted(every(v) for v in values)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            return _optional(_to_converter(others[0]))
    return _any_to_plain


def _optional(inner: _Convert) -> _Convert:
    if inner is None:
        return None
    convert = inner
    return lambda v: None if v is None else convert(v)


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _deferred(cls: type[Any], record: Any) -> Any:
    return _TO[cls](record)


def _record_to_plain(cls: type[Any]) -> Callable[[Any], Any]:
    """The conversion of one record class, its fields' conversions decided once."""
    convert = _TO.get(cls)
    if convert is None:
        _TO[cls] = partial(_deferred, cls)  # for a record that contains itself
        hints = get_type_hints(cls)
        plan = [(name, _to_converter(hints[name])) for name in field_names(cls)]

        def convert(record: Any) -> dict[str, Any]:
            plain: dict[str, Any] = {}
            for name, field_to_plain in plan:
                value = getattr(record, name)
                plain[name] = value if field_to_plain is None else field_to_plain(value)
            return plain

        _TO[cls] = convert
    return convert
