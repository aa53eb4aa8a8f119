"""Parsing Canonical Form and CRC-64-AVRO against the specification's own test vectors."""

from __future__ import annotations

import struct
from typing import Any

import fastavro.schema
import pytest

from streams.contracts import default_registry
from streams.contracts.canonical import crc64_avro, fingerprint, parsing_canonical_form

# (input, canonical form, fingerprint as the signed long the Avro test suite lists)
SPEC_VECTORS: list[tuple[Any, str, int | None]] = [
    ("null", '"null"', 7195948357588979594),
    ({"type": "null"}, '"null"', 7195948357588979594),
    ("int", '"int"', 8247732601305521295),
    ("long", '"long"', -3434872931120570953),
    ("string", '"string"', -8142146995180207161),
    (["int", {"type": "boolean"}], '["int","boolean"]', 5392556393470105090),
    (
        {"fields": [], "type": "record", "name": "foo", "namespace": "x.y"},
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        {"fields": [], "type": "record", "name": "a.b.foo", "namespace": "x.y"},
        '{"name":"a.b.foo","type":"record","fields":[]}',
        -4616218487480524110,
    ),
    (
        {
            "fields": [
                {"type": "boolean", "aliases": [], "name": "f1", "default": "true"},
                {"order": "descending", "name": "f2", "doc": "Hello", "type": "int"},
            ],
            "type": "record",
            "name": "foo",
        },
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},'
        '{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    (
        {"namespace": "x.y.z", "type": "enum", "name": "foo", "doc": "x", "symbols": ["A1", "A2"]},
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    ({"name": "foo", "type": "fixed", "size": 15}, '{"name":"foo","type":"fixed","size":15}', None),
    ({"items": {"type": "null"}, "type": "array"}, '{"type":"array","items":"null"}', None),
    ({"values": "string", "type": "map"}, '{"type":"map","values":"string"}', -8732877298790414990),
    (
        {
            "name": "PigValue",
            "type": "record",
            "fields": [{"name": "value", "type": ["null", "int", "long", "PigValue"]}],
        },
        '{"name":"PigValue","type":"record","fields":[{"name":"value",'
        '"type":["null","int","long","PigValue"]}]}',
        -1759257747318642341,
    ),
]


@pytest.mark.parametrize(("schema", "canonical", "expected"), SPEC_VECTORS)
def test_canonical_form_and_fingerprint_match_the_specification_vectors(
    schema: Any, canonical: str, expected: int | None
) -> None:
    assert parsing_canonical_form(schema) == canonical
    if expected is not None:
        assert fingerprint(schema) == struct.unpack("<Q", struct.pack("<q", expected))[0]


def test_logical_types_are_stripped_to_the_primitive_as_the_spec_rules_say() -> None:
    """STRIP drops logicalType, then PRIMITIVES turns {"type":"long"} into "long"."""
    ts = {"type": "long", "logicalType": "timestamp-millis"}
    assert parsing_canonical_form(ts) == '"long"'
    assert fingerprint(ts) == fingerprint("long")
    record = {"type": "record", "name": "r", "fields": [{"name": "t", "type": ts, "doc": "x"}]}
    assert (
        parsing_canonical_form(record)
        == '{"name":"r","type":"record","fields":[{"name":"t","type":"long"}]}'
    )


def test_crc64_avro_of_empty_input_is_the_seed() -> None:
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_every_project_schema_fingerprint_agrees_with_fastavro() -> None:
    for topic in default_registry().topics:
        for version in default_registry().versions(topic):
            assert version.canonical == fastavro.schema.to_parsing_canonical_form(version.raw)
            # fastavro prints the 8 bytes in the little-endian order the wire carries them
            expected = fastavro.schema.fingerprint(version.canonical, "CRC-64-AVRO")
            assert version.fingerprint_bytes.hex() == expected
