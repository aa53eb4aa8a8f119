"""Every version of every topic's schema, parsed once, findable by topic or fingerprint."""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro

from streams.contracts.canonical import fingerprint, parsing_canonical_form

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One schema file: `schemas/<topic>/v<version>.avsc`."""

    topic: str
    version: int
    path: Path
    raw: Any  # the JSON as written, logical types included
    parsed: Any  # fastavro's parsed form, logical types stripped (times stay integer ms)
    canonical: str
    fingerprint: int

    @property
    def fingerprint_bytes(self) -> bytes:
        """The fingerprint as the single-object encoding writes it: 8 bytes little-endian."""
        return struct.pack("<Q", self.fingerprint)


def strip_logical_types(schema: Any) -> Any:
    """The same schema without logicalType annotations.

    Logical types do not change the binary encoding; without them fastavro hands the core the
    integer milliseconds it computes with, instead of datetimes it would have to convert back.
    """
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


class SchemaRegistry:
    """The schemas of a folder: `<root>/<topic>/v<N>.avsc`, every version kept forever."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._by_fingerprint: dict[int, SchemaVersion] = {}
        if not root.is_dir():
            raise FileNotFoundError(f"schema folder {root} does not exist")
        for topic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            versions = []
            for path in topic_dir.iterdir():
                match = _VERSION_FILE.match(path.name)
                if match:
                    versions.append(self._load(topic_dir.name, int(match.group(1)), path))
            versions.sort(key=lambda v: v.version)
            if versions:
                self._versions[topic_dir.name] = versions
        for versions in self._versions.values():
            for v in versions:
                clash = self._by_fingerprint.get(v.fingerprint)
                if clash is not None:
                    raise ValueError(
                        f"{v.path} and {clash.path} have the same canonical form; "
                        "a new version must change the schema"
                    )
                self._by_fingerprint[v.fingerprint] = v

    @staticmethod
    def _load(topic: str, version: int, path: Path) -> SchemaVersion:
        raw = json.loads(path.read_text())
        return SchemaVersion(
            topic=topic,
            version=version,
            path=path,
            raw=raw,
            parsed=fastavro.parse_schema(strip_logical_types(raw)),
            canonical=parsing_canonical_form(raw),
            fingerprint=fingerprint(raw),
        )

    @property
    def topics(self) -> list[str]:
        return list(self._versions)

    def versions(self, topic: str) -> list[SchemaVersion]:
        try:
            return self._versions[topic]
        except KeyError:
            raise KeyError(f"no schema for topic {topic!r} in {self.root}") from None

    def current(self, topic: str) -> SchemaVersion:
        """The reader schema of a topic: its latest version."""
        return self.versions(topic)[-1]

    def version(self, topic: str, version: int) -> SchemaVersion:
        for v in self.versions(topic):
            if v.version == version:
                return v
        raise KeyError(f"topic {topic!r} has no schema version {version}")

    def by_fingerprint(self, fp: int) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)


def default_schema_dir() -> Path:
    """$REFERRAL_SCHEMAS_DIR, else the schemas a wheel carries, else the repository's."""
    explicit = os.environ.get("REFERRAL_SCHEMAS_DIR")
    if explicit:
        return Path(explicit)
    packaged = Path(__file__).resolve().parent.parent / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@lru_cache(maxsize=1)
def default_registry() -> SchemaRegistry:
    """The project's schemas, loaded and parsed once per process."""
    return SchemaRegistry(default_schema_dir())
