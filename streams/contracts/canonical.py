"""Avro Parsing Canonical Form and the CRC-64-AVRO (Rabin) fingerprint, per the specification.

Written from the specification rather than taken from a library because libraries disagree:
Apache avro's Python package keeps `{"type":"long"}` for a logical type where the spec's STRIP
and PRIMITIVES rules (and Java, fastavro) give `"long"`. Producers must fingerprint this form.
"""

from __future__ import annotations

import json
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_KEY_ORDER = ("name", "type", "fields", "symbols", "items", "values", "size")

_EMPTY = 0xC15D213AA4D7A795


def _table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_FP_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    """The 64-bit Rabin fingerprint of the Avro specification, as an unsigned integer."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _FP_TABLE[(fp ^ byte) & 0xFF]
    return fp


def _fullname(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _canonical(schema: Any, namespace: str | None, seen: set[str]) -> Any:
    if isinstance(schema, str):
        return schema if schema in PRIMITIVES else _fullname(schema, namespace)
    if isinstance(schema, list):
        return [_canonical(branch, namespace, seen) for branch in schema]
    kind = schema["type"]
    if isinstance(kind, list | dict):  # {"type": {...}} wraps another schema
        return _canonical(kind, namespace, seen)
    if kind in PRIMITIVES:  # STRIP drops logicalType and the rest, then PRIMITIVES applies
        return kind
    out: dict[str, Any] = {}
    if kind in _NAMED:
        name = _fullname(schema["name"], schema.get("namespace", namespace))
        if name in seen:
            return name
        seen.add(name)
        namespace = name.rsplit(".", 1)[0] if "." in name else None
        out["name"] = name
    out["type"] = kind
    if kind in ("record", "error"):
        out["fields"] = [
            {"name": f["name"], "type": _canonical(f["type"], namespace, seen)}
            for f in schema["fields"]
        ]
    elif kind == "enum":
        out["symbols"] = list(schema["symbols"])
    elif kind == "array":
        out["items"] = _canonical(schema["items"], namespace, seen)
    elif kind == "map":
        out["values"] = _canonical(schema["values"], namespace, seen)
    elif kind == "fixed":
        out["size"] = int(schema["size"])
    return {key: out[key] for key in _KEY_ORDER if key in out}


def parsing_canonical_form(schema: Any) -> str:
    """The schema's Parsing Canonical Form (PRIMITIVES, FULLNAMES, STRIP, ORDER, ... rules)."""
    return json.dumps(_canonical(schema, None, set()), separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema: Any) -> int:
    """CRC-64-AVRO of the Parsing Canonical Form, unsigned."""
    return crc64_avro(parsing_canonical_form(schema).encode("utf-8"))
