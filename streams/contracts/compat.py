"""BACKWARD_TRANSITIVE compatibility: each schema version must read data of all earlier ones.

Follows the Avro specification's schema-resolution rules (names, promotions, defaults, enum
symbols, unions), so the gate says in advance whether fastavro will resolve old records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.contracts.canonical import PRIMITIVES
from streams.contracts.registry import SchemaRegistry

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


@dataclass(frozen=True)
class Incompatibility:
    topic: str
    reader_version: int
    writer_version: int
    field: str
    problem: str

    def __str__(self) -> str:
        where = self.field or "(top level)"
        return (
            f"{self.topic}: v{self.reader_version} cannot read v{self.writer_version} records: "
            f"field {where}: {self.problem}"
        )


class _Names:
    def __init__(self, schema: Any) -> None:
        self.named: dict[str, Any] = {}
        self._collect(schema, None)

    def _collect(self, schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for s in schema:
                self._collect(s, namespace)
            return
        if not isinstance(schema, dict):
            return
        kind = schema.get("type")
        if isinstance(kind, dict | list):
            self._collect(kind, namespace)
            return
        if kind in ("record", "error", "enum", "fixed"):
            namespace = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name or not namespace else f"{namespace}.{name}"
            self.named[full] = schema
            self.named[name] = schema
            namespace = full.rsplit(".", 1)[0] if "." in full else None
        for f in schema.get("fields", []):
            self._collect(f["type"], namespace)
        for key in ("items", "values"):
            if key in schema:
                self._collect(schema[key], namespace)

    def resolve(self, schema: Any) -> Any:
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                schema = self.named.get(schema, self.named.get(schema.rsplit(".", 1)[-1], schema))
                if isinstance(schema, str):
                    return schema
                continue
            if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list | str):
                inner = schema["type"]
                if isinstance(inner, dict | list):
                    schema = inner
                    continue
                if inner in PRIMITIVES and schema.keys() <= {"type", "logicalType"}:
                    return inner
            return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return str(schema["type"])


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def read_problems(reader: Any, writer: Any) -> list[tuple[str, str]]:
    """(field path, problem) for each way `reader` fails to resolve data written by `writer`."""
    rn, wn = _Names(reader), _Names(writer)
    problems: list[tuple[str, str]] = []

    def check(r: Any, w: Any, path: str) -> None:
        r, w = rn.resolve(r), wn.resolve(w)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            for branch in w:
                check(r, branch, path)
            return
        if rk == "union":
            attempts: list[list[tuple[str, str]]] = []
            for branch in r:
                before = len(problems)
                check(branch, w, path)
                attempts.append(problems[before:])
                del problems[before:]
                if not attempts[-1]:
                    return
            problems.append((path, f"no branch of the reader union accepts writer type {wk}"))
            return
        if wk in PRIMITIVES or rk in PRIMITIVES:
            if rk not in _PROMOTIONS.get(wk, {wk}):
                problems.append((path, f"type changed from {wk} to {rk}"))
            return
        if rk != wk:
            problems.append((path, f"type changed from {wk} to {rk}"))
            return
        if rk in ("record", "enum", "fixed"):
            aliases = {_short(a) for a in r.get("aliases", [])}
            if _short(r["name"]) != _short(w["name"]) and _short(w["name"]) not in aliases:
                problems.append((path, f"record name changed from {w['name']} to {r['name']}"))
                return
        if rk == "record":
            writer_fields = {f["name"]: f for f in w["fields"]}
            for f in r["fields"]:
                sub = f"{path}.{f['name']}" if path else f["name"]
                names = [f["name"], *f.get("aliases", [])]
                match = next((writer_fields[n] for n in names if n in writer_fields), None)
                if match is None:
                    if "default" not in f:
                        problems.append((sub, "added without a default"))
                else:
                    check(f["type"], match["type"], sub)
        elif rk == "enum":
            removed = [s for s in w["symbols"] if s not in r["symbols"]]
            if removed and "default" not in r:
                problems.append((path, f"enum symbol {removed[0]} removed"))
        elif rk == "array":
            check(r["items"], w["items"], f"{path}[]")
        elif rk == "map":
            check(r["values"], w["values"], f"{path}{{}}")
        elif rk == "fixed" and r["size"] != w["size"]:
            problems.append((path, f"fixed size changed from {w['size']} to {r['size']}"))

    check(reader, writer, "")
    return problems


def check_registry(registry: SchemaRegistry) -> list[Incompatibility]:
    """Every BACKWARD_TRANSITIVE violation among each topic's versions."""
    found: list[Incompatibility] = []
    for topic in registry.topics:
        versions = registry.versions(topic)
        for i, newer in enumerate(versions):
            for older in versions[:i]:
                for path, problem in read_problems(newer.raw, older.raw):
                    found.append(
                        Incompatibility(topic, newer.version, older.version, path, problem)
                    )
    return found
