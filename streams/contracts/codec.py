"""Avro single-object encoding: C3 01, the writer schema's CRC-64-AVRO fingerprint, the body.

The decoder finds the writer schema by fingerprint among every version of the topic and
resolves it to the topic's current (reader) schema. Anything wrong raises CodecError, nothing
else: a worker can route every failure to the dead-letter topic with one `except`.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from streams.contracts.errors import CodecError
from streams.contracts.records import RECORD_TYPES, Record, from_avro, to_avro
from streams.contracts.registry import SchemaRegistry, SchemaVersion, default_registry
from streams.contracts.validation import check_contract

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8


class AvroCodec:
    """Encodes and decodes the records of the topics of one schema registry."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()

    def _schema(self, topic: str, version: int | None) -> SchemaVersion:
        """The topic's current schema, or the given version of it."""
        try:
            if version is None:
                return self.registry.current(topic)
            return self.registry.version(topic, version)
        except KeyError as exc:
            raise CodecError(str(exc.args[0])) from None

    # -- bytes <-> Avro dicts --------------------------------------------------------------

    def encode(self, topic: str, datum: dict[str, Any], version: int | None = None) -> bytes:
        """Single-object encoding of `datum` with the topic's current schema (or `version`)."""
        schema = self._schema(topic, version)
        buf = io.BytesIO()
        buf.write(MARKER)
        buf.write(schema.fingerprint_bytes)
        try:
            fastavro.schemaless_writer(buf, schema.parsed, datum, strict=True)
        except Exception as exc:  # fastavro raises many kinds; callers get one
            raise CodecError(f"cannot encode for {topic} v{schema.version}: {exc}") from exc
        return buf.getvalue()

    def writer_schema(self, topic: str, data: bytes) -> SchemaVersion:
        """The schema version that wrote `data`, checked to belong to `topic`."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CodecError(f"expected bytes, got {type(data).__name__}")
        if len(data) < HEADER_SIZE:
            raise CodecError(f"{len(data)} bytes is too short for an Avro single-object record")
        if data[:2] != MARKER:
            raise CodecError(f"not Avro single-object encoding (starts with {bytes(data[:2])!r})")
        (fp,) = struct.unpack_from("<Q", data, 2)
        writer = self.registry.by_fingerprint(fp)
        if writer is None:
            raise CodecError(f"unknown writer schema fingerprint {fp:016x}")
        if writer.topic != topic:
            raise CodecError(f"record of {writer.topic} v{writer.version} on topic {topic}")
        return writer

    def decode(
        self, topic: str, data: bytes, *, reader_version: int | None = None
    ) -> dict[str, Any]:
        """The Avro dict of `data`, resolved to the topic's current schema (or `reader_version`,
        as a consumer still deployed with that version would read it)."""
        writer = self.writer_schema(topic, data)
        reader = self._schema(topic, reader_version)
        body = io.BytesIO(bytes(data[HEADER_SIZE:]))
        try:
            datum = fastavro.schemaless_reader(
                body, writer.parsed, None if reader is writer else reader.parsed
            )
        except Exception as exc:
            raise CodecError(
                f"corrupt {topic} v{writer.version} body: {type(exc).__name__}: {exc}"
            ) from exc
        if body.tell() != len(data) - HEADER_SIZE:
            raise CodecError(
                f"{len(data) - HEADER_SIZE - body.tell()} trailing bytes after the {topic} record"
            )
        if not isinstance(datum, dict):
            raise CodecError(f"{topic} body is not a record")
        return datum

    # -- bytes <-> typed records -----------------------------------------------------------

    def encode_record(self, record: Record, version: int | None = None) -> bytes:
        return self.encode(record.topic, to_avro(record), version)

    def decode_record(
        self, topic: str, data: bytes, *, kafka_timestamp_ms: int | None = None
    ) -> Record:
        """Decode and check the contract; raises CodecError (or its ContractError) only."""
        datum = self.decode(topic, data)
        try:
            record: Record = from_avro(RECORD_TYPES[topic], datum)
        except Exception as exc:
            raise CodecError(f"{topic} record does not fit its type: {exc}") from exc
        check_contract(record, kafka_timestamp_ms)
        return record
