"""The JSONL form of RULES.md: `{"topic": ..., "value": {...}}` a line, plain JSON values.

Conversion is driven by the topic's current schema, so a bad line is reported with its line
number and the path of the field at fault, and validated with the same contract as Kafka input.
"""

from __future__ import annotations

import base64
import json
import operator
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
    # time.strftime over gmtime: several times cheaper than datetime, twice as cheap as
    # formatting the struct's fields one by one.
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def _is_timestamp(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("logicalType") in (
        "timestamp-millis",
        "timestamp-micros",
    )


class _Bad(Exception):
    """A JSON value that does not fit its schema; `path` leads to it from the record."""

    def __init__(self, reason: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    @property
    def field(self) -> str | None:
        text = ""
        for part in self.path:
            text += part if part.startswith("[") or not text else f".{part}"
        return text or None


def _timestamp(value: Any) -> int:
    if not isinstance(value, str):
        raise _Bad("must be an ISO-8601 UTC timestamp string")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise _Bad(f"bad timestamp: {exc}") from None


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        raise _Bad("must be a string")
    return value


def _integer(bits: int) -> Callable[[Any], Any]:
    limit = 2 ** (bits - 1)

    def integer(value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad("must be an integer")
        if not -limit <= value < limit:
            raise _Bad(f"out of range for {'int' if bits == 32 else 'long'}")
        return value

    return integer


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Bad("must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise _Bad("must be a base64 string") from None


def _null(value: Any) -> None:
    if value is not None:
        raise _Bad("must be null")


_SIMPLE: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "int": _integer(32),
    "long": _integer(64),
    "boolean": _boolean,
    "bytes": _bytes,
    "null": _null,
}


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

    def compile_from_json(self, schema: Any) -> Callable[[Any], Any]:
        """A checking converter from plain JSON to the Avro dict of `schema`, built once per
        topic. It raises _Bad with the path of the field at fault."""
        schema = self._resolve(schema)
        if isinstance(schema, list):
            nullable = "null" in schema
            branches = [self.compile_from_json(b) for b in schema if b != "null"]

            def union(value: Any) -> Any:
                if value is None:
                    if nullable:
                        return None
                    raise _Bad("must not be null")
                problems = []
                for branch in branches:
                    try:
                        return branch(value)
                    except _Bad as exc:
                        problems.append(exc.reason)
                raise _Bad("; ".join(problems) or "matches no branch")

            return union
        kind = schema["type"] if isinstance(schema, dict) else schema
        if _is_timestamp(schema):
            return _timestamp
        if kind == "record":
            return self._record_from_json(schema)
        if kind == "enum":
            symbols = frozenset(schema["symbols"])
            listed = ", ".join(schema["symbols"])

            def enum(value: Any) -> Any:
                if value not in symbols:
                    raise _Bad(f"must be one of {listed}")
                return value

            return enum
        if kind == "array":
            item = self.compile_from_json(schema["items"])

            def array(value: Any) -> Any:
                if not isinstance(value, list):
                    raise _Bad("must be an array")
                out = []
                for index, element in enumerate(value):
                    try:
                        out.append(item(element))
                    except _Bad as exc:
                        raise _Bad(exc.reason, (f"[{index}]", *exc.path)) from None
                return out

            return array
        simple = _SIMPLE.get(kind)
        if simple is None:
            raise ValueError(f"unsupported schema type {kind}")
        return simple

    def _record_from_json(self, schema: Any) -> Callable[[Any], Any]:
        fields = [
            (f["name"], self.compile_from_json(f["type"]), "default" in f, f.get("default"))
            for f in schema["fields"]
        ]
        known = frozenset(name for name, *_ in fields)

        def record(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Bad("must be an object")
            out = {}
            for name, convert, has_default, default in fields:
                if name in value:
                    try:
                        out[name] = convert(value[name])
                    except _Bad as exc:
                        raise _Bad(exc.reason, (name, *exc.path)) from None
                elif has_default:
                    out[name] = default
                else:
                    raise _Bad("is missing", (name,))
            if not known.issuperset(value):
                raise _Bad(f"unknown field {sorted(set(value) - known)[0]!r}")
            return out

        return record

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
            names = tuple(f["name"] for f in schema["fields"])  # schema order
            converted = [
                (position, conv)
                for position, f in enumerate(schema["fields"])
                if (conv := self.compile_to_json(f["type"])) is not None
            ]
            # One C call reads every field (attrgetter of one name gives the bare value).
            read = operator.attrgetter(*names)
            fields = read if len(names) > 1 else lambda value: (read(value),)

            def record(value: Any) -> dict[str, Any]:
                values = list(fields(value))
                for position, conv in converted:
                    values[position] = conv(values[position])
                return dict(zip(names, values, strict=True))

            return record
        if kind == "array":
            item = self.compile_to_json(schema["items"])
            if item is None:
                return None
            return lambda value: [item(v) for v in value]
        if kind == "bytes":
            return lambda value: base64.b64encode(value).decode()
        return None


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The encoder's own string quoting (the C one where there is one).
_QUOTE: Callable[[str], str] = json.encoder.encode_basestring


class _LineCompiler:
    """Writes, for one topic, the source of a function from a typed record to its JSONL line:
    the text _ENCODER would give, built straight from the fields, at a fraction of the cost of
    an intermediate dict. Schemas with a type it does not know (bytes, say) give None: those
    topics keep the dict and the encoder."""

    def __init__(self, conv: _Converter) -> None:
        self._conv = conv
        self._names = 0
        self.namespace: dict[str, Any] = {"_quote": _QUOTE, "_time": format_time}

    def _name(self, stem: str) -> str:
        self._names += 1
        return f"_{stem}{self._names}"

    def parts(self, schema: Any, access: str) -> list[str] | None:
        """Python expressions whose strings, joined, are the JSON of the value at `access`."""
        schema = self._conv._resolve(schema)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(branches) != 1 or len(schema) != 2:
                return None
            held = self._name("v")
            inner = self.parts(branches[0], held)
            if inner is None:
                return None
            return [f"('null' if ({held} := {access}) is None else ''.join(({', '.join(inner)},)))"]
        if _is_timestamp(schema):
            return ["'\"'", f"_time({access})", "'\"'"]
        kind = schema["type"] if isinstance(schema, dict) else schema
        if kind in ("string", "enum"):  # enums are str enums: their symbol is their value
            return [f"_quote({access})"]
        if kind in ("int", "long"):
            return [f"int.__repr__({access})"]
        if kind == "boolean":
            return [f"('true' if {access} else 'false')"]
        if kind == "array":
            item = self._name("x")
            inner = self.parts(schema["items"], item)
            if inner is None:
                return None
            joined = f"''.join(({', '.join(inner)},))"
            return ["'['", f"','.join([{joined} for {item} in {access}])", "']'"]
        if kind == "record":
            out = []
            for position, f in enumerate(schema["fields"]):
                inner = self.parts(f["type"], f"{access}.{f['name']}")
                if inner is None:
                    return None
                out.append(repr(("{" if position == 0 else ",") + _QUOTE(f["name"]) + ":"))
                out.extend(inner)
            out.append(repr("}") if out else repr("{}"))
            return out
        return None

    def line(self, topic: str, schema: Any) -> Callable[[Any], str] | None:
        inner = self.parts(schema, "record")
        if inner is None:
            return None
        head = repr('{"topic":' + _QUOTE(topic) + ',"value":')
        source = f"def line(record):\n    return ''.join(({head}, {', '.join(inner)}, '}}'))\n"
        exec(source, self.namespace)  # built from the schema's own names and types
        result: Callable[[Any], str] = self.namespace["line"]
        return result


class JsonlCodec:
    """Reads and writes records in the JSONL convention, for every topic of a registry."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self._converters: dict[str, _Converter] = {}
        self._formatters: dict[str, Callable[[Any], Any]] = {}
        self._parsers: dict[str, Callable[[Any], Any]] = {}
        self._lines: dict[str, Callable[[Any], str]] = {}

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
            datum = self._parser(topic)(envelope["value"])
        except _Bad as exc:
            where = f"{exc.field}: " if exc.field else ""
            raise JsonlError(line, f"{topic}: {where}{exc.reason}", field=exc.field) from None
        try:
            record: Record = from_avro(RECORD_TYPES[topic], datum)
            check_contract(record)
        except CodecError as exc:
            raise JsonlError(line, f"{topic}: {exc}", field=exc.field) from None
        return record

    def _parser(self, topic: str) -> Callable[[Any], Any]:
        parser = self._parsers.get(topic)
        if parser is None:
            conv = self._converter(topic)
            parser = conv.compile_from_json(conv.schema)
            self._parsers[topic] = parser
        return parser

    def read(self, lines: Iterable[str]) -> Iterator[tuple[int, Record]]:
        """(line number, record) for each non-blank line; the first bad line raises JsonlError."""
        for number, text in enumerate(lines, start=1):
            if text.strip():
                yield number, self.parse_line(text, number)

    def read_file(self, path: Path) -> Iterator[tuple[int, Record]]:
        with path.open(encoding="utf-8") as handle:
            yield from self.read(handle)

    def value(self, record: Record) -> dict[str, Any]:
        """The record's value in the JSONL convention (ISO times, enum symbols), as a dict."""
        formatter = self._formatters.get(record.topic)
        if formatter is None:
            conv = self._converter(record.topic)
            formatter = conv.compile_to_json(conv.schema) or (lambda value: value)
            self._formatters[record.topic] = formatter
        value: dict[str, Any] = formatter(record)
        return value

    def format(self, record: Record) -> str:
        """One JSONL line (no newline) for a typed record."""
        line = self._lines.get(record.topic)
        if line is None:
            conv = self._converter(record.topic)
            line = _LineCompiler(conv).line(record.topic, conv.schema) or self.format_generic
            self._lines[record.topic] = line
        return line(record)

    def format_generic(self, record: Record) -> str:
        """What `format` gives, through the record's value dict and the JSON encoder (the
        reference the compiled lines are tested against)."""
        return _ENCODER.encode({"topic": record.topic, "value": self.value(record)})

    def write(self, records: Iterable[Record], out: IO[str]) -> int:
        count = 0
        for record in records:
            out.write(self.format(record))
            out.write("\n")
            count += 1
        return count
