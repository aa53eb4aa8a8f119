"""The official Apache `avro` library as an independent reference for the project's codec."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import avro.io
import avro.schema
import pytest

from streams.contracts import AvroCodec, default_registry
from streams.contracts.codec import HEADER_SIZE
from streams.contracts.records import to_avro
from tests.builders import sample_records


def _reference_schema(topic: str) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(default_registry().current(topic).raw))


def _to_reference_value(schema: Any, value: Any) -> Any:
    """Convert integer-millisecond timestamps to the datetimes the avro library expects."""
    if isinstance(schema, avro.schema.UnionSchema):
        if value is None:
            return None
        branch = next(s for s in schema.schemas if s.type != "null")
        return _to_reference_value(branch, value)
    if getattr(schema, "logical_type", None) == "timestamp-millis":
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(schema, avro.schema.RecordSchema):
        return {f.name: _to_reference_value(f.type, value[f.name]) for f in schema.fields}
    return value


def _from_reference_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _from_reference_value(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: r.topic)
def test_project_codec_and_official_avro_produce_the_same_body_bytes(record: Any) -> None:
    codec = AvroCodec()
    ours = codec.encode_record(record)
    schema = _reference_schema(record.topic)
    datum = _to_reference_value(schema, to_avro(record))

    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(buf))
    assert ours[HEADER_SIZE:] == buf.getvalue()

    # and each side reads what the other wrote
    decoded_by_reference = avro.io.DatumReader(schema).read(
        avro.io.BinaryDecoder(io.BytesIO(ours[HEADER_SIZE:]))
    )
    assert _from_reference_value(decoded_by_reference) == to_avro(record)
    header = ours[:HEADER_SIZE]
    assert codec.decode_record(record.topic, header + buf.getvalue()) == record
