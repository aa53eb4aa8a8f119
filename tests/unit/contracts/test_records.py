"""The records' fast builder makes the very objects their constructors make, and their field
tuples (what crosses between processes) come back as equal records."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from streams.contracts.records import (
    LeadSubmitted,
    Referrer,
    TaggedFields,
    record_builder,
    record_fields,
    record_from_fields,
)
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


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: type(r).__name__)
def test_a_record_crosses_as_its_field_tuple_and_comes_back_equal(record: Any) -> None:
    cls = type(record)
    values = record_fields(cls)(record)
    assert len(values) == len(dataclasses.fields(record))
    back = record_from_fields(cls)(pickle.loads(pickle.dumps(values)))
    assert type(back) is cls
    assert back == record


def test_a_field_tuple_holds_nested_records_as_tuples() -> None:
    lead = next(r for r in sample_records() if isinstance(r, LeadSubmitted))
    values = record_fields(LeadSubmitted)(lead)
    assert values[3] == record_fields(Referrer)(lead.referrer)
    assert all(not dataclasses.is_dataclass(v) for v in values)


def test_an_optional_nested_record_has_no_field_tuple() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Holder:
        referrer: Referrer | None

    with pytest.raises(TypeError, match="optional record"):
        record_fields(Holder)


def test_a_mixed_batch_crosses_tagged_and_comes_back_in_order() -> None:
    records = sample_records()
    tagged = TaggedFields(tuple(dict.fromkeys(type(r) for r in records)))
    crossed = pickle.loads(pickle.dumps(tagged.dump(records)))
    assert [tagged.kinds[tag] for tag, _ in crossed] == [type(r) for r in records]
    assert tagged.load(crossed) == records
