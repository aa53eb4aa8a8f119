"""State values to bytes and back, for changelogs: compact JSON tagged with the state version."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from streams.plain import from_plain, to_plain
from streams.rules.model import AccountState, LeadState, RefereeState, ReferrerState

S = TypeVar("S")

# Bump a state's version when its shape changes, and teach decode_state to read the old one.
STATE_VERSIONS: dict[type[Any], int] = {
    LeadState: 1,
    AccountState: 1,
    RefereeState: 1,
    ReferrerState: 1,
}


class StateVersionError(ValueError):
    """A stored state was written by a newer version of the code than this one."""


def encode_state(state: Any) -> bytes:
    plain = to_plain(state)
    plain["v"] = STATE_VERSIONS[type(state)]
    return json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()


def decode_state(cls: type[S], data: bytes) -> S:
    plain = json.loads(data)
    version = plain.pop("v", 1)
    current = STATE_VERSIONS[cls]
    if version > current:
        raise StateVersionError(f"{cls.__name__} v{version} is newer than this code's v{current}")
    return from_plain(cls, plain)
