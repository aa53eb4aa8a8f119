"""State values to bytes and back, for changelogs: compact JSON tagged with the state version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from streams.plain import from_plain, to_plain
from streams.rules.model import AccountState, LeadState, RefereeState, ReferrerState

S = TypeVar("S")

# Bump a state's version when its shape changes, and teach decode_state to read the old one
# (an upgrade from each older version in _UPGRADES).
STATE_VERSIONS: dict[type[Any], int] = {
    LeadState: 3,
    AccountState: 1,
    RefereeState: 2,
    ReferrerState: 1,
}


def _lead_v1_to_v2(plain: dict[str, Any]) -> dict[str, Any]:
    """v1 kept every event id the lead had seen; v2 keeps only those of rejected duplicate
    submissions, the recorded facts carrying the others."""
    recorded = {
        fact["event_id"]
        for name in ("submission", "signature", "invoice", "refusal")
        if (fact := plain.get(name)) is not None
    }
    plain["duplicates"] = sorted(set(plain.pop("seen", ())) - recorded)
    return plain


def _lead_v2_to_v3(plain: dict[str, Any]) -> dict[str, Any]:
    """v3 keeps the referee identity the lead claimed (R2 in business time); unknown before."""
    if plain.get("submission") is not None:
        plain["submission"].setdefault("referee", None)
    return plain


def _referee_v1_to_v2(plain: dict[str, Any]) -> dict[str, Any]:
    """v2 orders claims by business time; a v1 first lead was the first to arrive, and keeps
    its place against any claim (time 0) until it is granted or displaced."""
    plain.setdefault("first_at", 0)
    plain.setdefault("first_event_id", "")
    plain.setdefault("granted", False)
    return plain


_UPGRADES: dict[tuple[type[Any], int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    (LeadState, 1): _lead_v1_to_v2,
    (LeadState, 2): _lead_v2_to_v3,
    (RefereeState, 1): _referee_v1_to_v2,
}


class StateVersionError(ValueError):
    """A stored state was written by a newer version of the code than this one."""


def encode_state(state: Any) -> bytes:
    plain = to_plain(state)
    plain["v"] = STATE_VERSIONS[type(state)]
    return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)


def decode_state(cls: type[S], data: bytes) -> S:
    plain = orjson.loads(data)
    version = plain.pop("v", 1)
    current = STATE_VERSIONS[cls]
    if version > current:
        raise StateVersionError(f"{cls.__name__} v{version} is newer than this code's v{current}")
    for older in range(version, current):
        plain = _UPGRADES[cls, older](plain)
    return from_plain(cls, plain)
