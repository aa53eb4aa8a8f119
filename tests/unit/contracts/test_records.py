"""The records' fast builder makes the very objects their constructors make."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from streams.contracts.records import record_builder
from tests.builders import sample_records


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: type(r).__name__)
def test_record_builder_gives_an_equal_record_positionally_and_by_keyword(record: Any) -> None:
    cls = type(record)
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    build = record_builder(cls)
    for built in (build(*values.values()), build(**values)):
        assert type(built) is cls
        assert built == record
        assert hash(built) == hash(record)
        assert repr(built) == repr(record)


def test_a_built_record_stays_frozen() -> None:
    record = sample_records()[0]
    built = record_builder(type(record))(
        *(getattr(record, f.name) for f in dataclasses.fields(record))
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.event_id = "other"


def test_record_builder_wants_every_field() -> None:
    build = record_builder(type(sample_records()[0]))
    with pytest.raises(TypeError):
        build("only-one")
