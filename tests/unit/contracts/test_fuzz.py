"""Hostile bytes: the decoder only ever returns a valid record or raises CodecError."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts import AvroCodec, CodecError
from streams.contracts.records import INPUT_TOPICS, Record
from streams.contracts.validation import check_contract
from tests.builders import sample_records

CODEC = AvroCodec()
VALID = [(r.topic, CODEC.encode_record(r)) for r in sample_records()]


def _decode_or_codec_error(topic: str, data: bytes) -> Record | None:
    try:
        record = CODEC.decode_record(topic, data)
    except CodecError:
        return None
    check_contract(record)  # anything returned passes the contract
    return record


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(INPUT_TOPICS), data=st.binary(max_size=300))
def test_random_bytes(topic: str, data: bytes) -> None:
    _decode_or_codec_error(topic, data)


@settings(max_examples=400)
@given(topic=st.sampled_from(INPUT_TOPICS), body=st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header(topic: str, body: bytes) -> None:
    header = CODEC.encode_record(next(r for r in sample_records() if r.topic == topic))[:10]
    _decode_or_codec_error(topic, header + body)


@settings(max_examples=400)
@given(sample=st.sampled_from(VALID), cut=st.integers(min_value=0, max_value=400))
def test_truncations(sample: tuple[str, bytes], cut: int) -> None:
    topic, data = sample
    _decode_or_codec_error(topic, data[: min(cut, len(data) - 1)])


@settings(max_examples=600)
@given(sample=st.sampled_from(VALID), flips=st.lists(st.integers(min_value=0), max_size=4))
def test_bit_flips(sample: tuple[str, bytes], flips: list[int]) -> None:
    topic, data = sample
    mutated = bytearray(data)
    for position in flips:
        bit = position % (len(mutated) * 8)
        mutated[bit // 8] ^= 1 << (bit % 8)
    _decode_or_codec_error(topic, bytes(mutated))


def test_non_bytes_input_is_a_codec_error() -> None:
    bad: Any = "not bytes"
    assert _decode_or_codec_error("lead-submitted", bad) is None
