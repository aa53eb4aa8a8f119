"""The single-object codec: wire layout, round trips, evolution, and its one error class."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from streams.contracts import AvroCodec, CodecError, ContractError, SchemaRegistry
from streams.contracts.registry import default_schema_dir
from tests.builders import T0, lead, paid, sample_records, signed


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: r.topic)
def test_every_topic_round_trips(codec: AvroCodec, record: object) -> None:
    data = codec.encode_record(record)  # type: ignore[arg-type]
    assert codec.decode_record(record.topic, data) == record  # type: ignore[attr-defined]


def test_wire_layout_is_marker_fingerprint_body(codec: AvroCodec) -> None:
    data = codec.encode_record(signed())
    schema = codec.registry.current("client-signed")
    assert data[:2] == b"\xc3\x01"
    assert struct.unpack("<Q", data[2:10])[0] == schema.fingerprint


def test_unknown_fingerprint_wrong_marker_and_short_input_raise_codec_error(
    codec: AvroCodec,
) -> None:
    good = codec.encode_record(signed())
    with pytest.raises(CodecError, match="unknown writer schema fingerprint"):
        codec.decode("client-signed", good[:2] + b"\x00" * 8 + good[10:])
    with pytest.raises(CodecError, match="not Avro single-object"):
        codec.decode("client-signed", b"\x00\x01" + good[2:])
    with pytest.raises(CodecError, match="too short"):
        codec.decode("client-signed", good[:5])
    with pytest.raises(CodecError, match="trailing bytes"):
        codec.decode("client-signed", good + b"\x00")


def test_record_of_another_topic_is_refused(codec: AvroCodec) -> None:
    data = codec.encode_record(signed())
    with pytest.raises(CodecError, match=r"record of client-signed v1 on topic lead-submitted"):
        codec.decode("lead-submitted", data)


def test_contract_violations_raise_contract_error_naming_the_field(codec: AvroCodec) -> None:
    bad = codec.encode_record(paid(sequence=0))
    with pytest.raises(ContractError) as caught:
        codec.decode_record("invoice-paid", bad)
    assert caught.value.field == "invoice_sequence"


def test_time_more_than_a_day_after_the_kafka_timestamp_is_refused(codec: AvroCodec) -> None:
    data = codec.encode_record(lead(at=T0))
    codec.decode_record("lead-submitted", data, kafka_timestamp_ms=T0)
    with pytest.raises(ContractError, match="more than a day after"):
        codec.decode_record("lead-submitted", data, kafka_timestamp_ms=T0 - 25 * 3600 * 1000)


def test_encoding_a_value_that_does_not_fit_the_schema_raises_codec_error(
    codec: AvroCodec,
) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        codec.encode("client-signed", {"event_id": "x"})


@pytest.fixture
def registry_with_v2(tmp_path: Path) -> SchemaRegistry:
    """The project's schemas plus a test-only client-signed v2 with an added optional field."""
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root)
    v1 = json.loads((root / "client-signed" / "v1.avsc").read_text())
    v1["fields"].append(
        {
            "name": "sales_channel",
            "type": ["null", "string"],
            "default": None,
            "doc": "test-only field",
        }
    )
    (root / "client-signed" / "v2.avsc").write_text(json.dumps(v1))
    return SchemaRegistry(root)


def test_schema_evolution_v1_records_read_as_v2_and_v2_records_read_with_v1(
    registry_with_v2: SchemaRegistry,
) -> None:
    new = AvroCodec(registry_with_v2)
    old = AvroCodec()  # only knows v1
    v1_datum = {
        "event_id": "e1",
        "occurred_at": T0,
        "lead_id": "l1",
        "account_id": "a1",
        "commitment_months": 12,
    }
    written_by_v1 = new.encode("client-signed", v1_datum, version=1)
    assert new.decode("client-signed", written_by_v1) == {**v1_datum, "sales_channel": None}

    written_by_v2 = new.encode("client-signed", {**v1_datum, "sales_channel": "web"})
    assert new.decode("client-signed", written_by_v2) == {**v1_datum, "sales_channel": "web"}
    assert new.decode("client-signed", written_by_v2, reader_version=1) == v1_datum
    # A deployment whose schema folder lacks v2 cannot guess the writer: it refuses cleanly.
    with pytest.raises(CodecError, match="unknown writer schema fingerprint"):
        old.decode("client-signed", written_by_v2)
