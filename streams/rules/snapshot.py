"""State values to bytes and back, for changelogs: compact JSON tagged with the state version."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from streams.plain import from_plain, to_plain

S = TypeVar("S")


class StateVersionError(ValueError):
    """A stored state was written by a newer version of the code than this one."""


def encode_state(state: Any) -> bytes:
    plain = to_plain(state)
    plain["v"] = type(state).VERSION
    return json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()


def decode_state(cls: type[S], data: bytes) -> S:
    plain = json.loads(data)
    version = plain.pop("v", 1)
    if version > cls.VERSION:  # type: ignore[attr-defined]
        raise StateVersionError(
            f"{cls.__name__} v{version} is newer than this code's v{cls.VERSION}"  # type: ignore[attr-defined]
        )
    return from_plain(cls, plain)
