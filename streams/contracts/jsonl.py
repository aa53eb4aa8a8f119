"""The JSONL form of RULES.md: `{"topic": ..., "value": {...}}` a line, plain JSON values.

Conversion is driven by the topic's current schema, so a bad line is reported with its line
number and the path of the field at fault, and validated with the same contract as Kafka input.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from streams.contracts.errors import CodecError
from streams.contracts.records import RECORD_TYPES, Record, from_avro
from streams.contracts.registry import SchemaRegistry, default_registry
from streams.contracts.validation import check_contract

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class JsonlError(CodecError):
    """A JSONL line that cannot be read; says which line and which field."""

    def __init__(self, line: int, message: str, *, field: str | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}", field=field)

    def __str__(self) -> str:
        return self.reason  # the message already names the field after the line number


def parse_time(text: str) -> int:
    """ISO-8601 UTC (`2026-01-05T10:00:00Z`, milliseconds optional) to epoch milliseconds."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or parsed.utcoffset() != timedelta(0):
        raise ValueError(f"{text!r} is not a UTC time (end it with Z)")
    return (parsed - _EPOCH) // _MS


def format_time(ms: int) -> str:
    """Epoch milliseconds to ISO-8601 UTC, with milliseconds only when there are some."""
    seconds, millis = divmod(ms, 1000)
    t = time.gmtime(seconds)  # several times cheaper than datetime arithmetic and strftime
    base = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def _is_timestamp(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("logicalType") in (
        "timestamp-millis",
        "timestamp-micros",
    )


class _Converter:
    """Walks a raw schema to turn plain JSON into an Avro dict and back."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.named: dict[str, Any] = {}
        self._collect(schema)

    def _collect(self, schema: Any) -> None:
        if isinstance(schema, list):
            for s in schema:
                self._collect(s)
        elif isinstance(schema, dict):
            if schema.get("type") in ("record", "enum", "fixed") and "name" in schema:
                self.named[schema["name"]] = schema
            for key in ("fields", "items", "values"):
                if key in schema:
                    sub = schema[key]
                    for item in sub if key == "fields" else [sub]:
                        self._collect(item["type"] if key == "fields" else item)
            if isinstance(schema.get("type"), dict | list):
                self._collect(schema["type"])

    def _resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return schema["type"]
        return schema

    def from_json(self, schema: Any, value: Any, path: str) -> Any:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            if value is None:
                if "null" in schema:
                    return None
                raise CodecError("must not be null", field=path)
            problems = []
            for branch in schema:
                if branch == "null":
                    continue
                try:
                    return self.from_json(branch, value, path)
                except CodecError as exc:
                    problems.append(exc.reason)
            raise CodecError("; ".join(problems) or "matches no branch", field=path)
        kind = schema["type"] if isinstance(schema, dict) else schema
        if _is_timestamp(schema):
            if isinstance(value, str):
                try:
                    return parse_time(value)
                except ValueError as exc:
                    raise CodecError(f"bad timestamp: {exc}", field=path) from None
            raise CodecError("must be an ISO-8601 UTC timestamp string", field=path)
        if kind == "record":
            if not isinstance(value, dict):
                raise CodecError("must be an object", field=path)
            out = {}
            known = set()
            for f in schema["fields"]:
                name = f["name"]
                known.add(name)
                sub = f"{path}.{name}" if path else name
                if name in value:
                    out[name] = self.from_json(f["type"], value[name], sub)
                elif "default" in f:
                    out[name] = f["default"]
                else:
                    raise CodecError("is missing", field=sub)
            extra = sorted(set(value) - known)
            if extra:
                raise CodecError(f"unknown field {extra[0]!r}", field=path or None)
            return out
        if kind == "enum":
            if value not in schema["symbols"]:
                raise CodecError(f"must be one of {', '.join(schema['symbols'])}", field=path)
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise CodecError("must be an array", field=path)
            return [self.from_json(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "string":
            if not isinstance(value, str):
                raise CodecError("must be a string", field=path)
            return value
        if kind in ("int", "long"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise CodecError("must be an integer", field=path)
            limit = 2**31 if kind == "int" else 2**63
            if not -limit <= value < limit:
                raise CodecError(f"out of range for {kind}", field=path)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise CodecError("must be true or false", field=path)
            return value
        if kind == "bytes":
            if not isinstance(value, str):
                raise CodecError("must be a base64 string", field=path)
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                raise CodecError("must be a base64 string", field=path) from None
        if kind == "null":
            if value is not None:
                raise CodecError("must be null", field=path)
            return None
        raise CodecError(f"unsupported schema type {kind}", field=path)

    def compile_to_json(self, schema: Any) -> Callable[[Any], Any] | None:
        """A function from a typed value to plain JSON data for `schema`, built once per topic
        (None where the value is JSON as it is: strings, numbers, str enums, tuples)."""
        schema = self._resolve(schema)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            inner = self.compile_to_json(branches[0]) if len(branches) == 1 else None
            if inner is None:
                return None
            return lambda value: None if value is None else inner(value)
        if _is_timestamp(schema):
            return format_time
        kind = schema["type"] if isinstance(schema, dict) else schema
        if kind == "record":
            names = [f["name"] for f in schema["fields"]]
            converted = [
                (f["name"], conv)
                for f in schema["fields"]
                if (conv := self.compile_to_json(f["type"])) is not None
            ]

            def record(value: Any) -> dict[str, Any]:
                out = {name: getattr(value, name) for name in names}  # schema order
                for name, conv in converted:
                    out[name] = conv(out[name])
                return out

            return record
        if kind == "array":
            item = self.compile_to_json(schema["items"])
            if item is None:
                return None
            return lambda value: [item(v) for v in value]
        if kind == "bytes":
            return lambda value: base64.b64encode(value).decode()
        return None


class JsonlCodec:
    """Reads and writes records in the JSONL convention, for every topic of a registry."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self._converters: dict[str, _Converter] = {}
        self._formatters: dict[str, Callable[[Any], Any]] = {}

    def _converter(self, topic: str) -> _Converter:
        conv = self._converters.get(topic)
        if conv is None:
            conv = _Converter(self.registry.current(topic).raw)
            self._converters[topic] = conv
        return conv

    def parse_line(self, text: str, line: int) -> Record:
        """One line to a typed, contract-checked record; JsonlError says what is wrong."""
        try:
            envelope = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JsonlError(line, f"not JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(envelope, dict) or "topic" not in envelope or "value" not in envelope:
            raise JsonlError(line, 'expected {"topic": ..., "value": {...}}')
        topic = envelope["topic"]
        if topic not in RECORD_TYPES:
            raise JsonlError(line, f"unknown topic {topic!r}", field="topic")
        try:
            datum = self._converter(topic).from_json(
                self._converter(topic).schema, envelope["value"], ""
            )
            record: Record = from_avro(RECORD_TYPES[topic], datum)
            check_contract(record)
        except CodecError as exc:
            raise JsonlError(line, f"{topic}: {exc}", field=exc.field) from None
        return record

    def read(self, lines: Iterable[str]) -> Iterator[tuple[int, Record]]:
        """(line number, record) for each non-blank line; the first bad line raises JsonlError."""
        for number, text in enumerate(lines, start=1):
            if text.strip():
                yield number, self.parse_line(text, number)

    def read_file(self, path: Path) -> Iterator[tuple[int, Record]]:
        with path.open(encoding="utf-8") as handle:
            yield from self.read(handle)

    def format(self, record: Record) -> str:
        """One JSONL line (no newline) for a typed record."""
        formatter = self._formatters.get(record.topic)
        if formatter is None:
            conv = self._converter(record.topic)
            formatter = conv.compile_to_json(conv.schema) or (lambda value: value)
            self._formatters[record.topic] = formatter
        value = formatter(record)
        return json.dumps(
            {"topic": record.topic, "value": value}, ensure_ascii=False, separators=(",", ":")
        )

    def write(self, records: Iterable[Record], out: IO[str]) -> int:
        count = 0
        for record in records:
            out.write(self.format(record))
            out.write("\n")
            count += 1
        return count
