"""Dead letters always fit on their topic, and keep the bad record's origin."""

from __future__ import annotations

import hashlib

from streams.contracts import AvroCodec, CodecError
from streams.contracts.deadletter import MAX_VALUE_BYTES, dead_letter


def test_a_bad_record_over_1_mib_is_cut_with_its_length_and_digest() -> None:
    value = bytes(range(256)) * 5000  # 1,280,000 bytes
    record = dead_letter(
        topic="lead-submitted",
        partition=3,
        offset=41,
        key=b"k",
        value=value,
        error=CodecError("not Avro"),
        now_ms=1,
    )
    assert record.value == value[:MAX_VALUE_BYTES]
    assert f"value of {len(value)} bytes" in record.error_message
    assert hashlib.sha256(value).hexdigest() in record.error_message
    assert (record.source_topic, record.source_partition, record.source_offset) == (
        "lead-submitted",
        3,
        41,
    )
    assert len(AvroCodec().encode_record(record)) < 1024 * 1024


def test_a_small_bad_record_is_kept_whole() -> None:
    record = dead_letter(
        topic="invoice-paid",
        partition=0,
        offset=0,
        key=None,
        value=b"\x00junk",
        error=CodecError("not Avro"),
        now_ms=1,
    )
    assert record.value == b"\x00junk"
    assert record.error_message == "not Avro"
