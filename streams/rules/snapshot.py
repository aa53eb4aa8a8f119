"""State values to bytes and back, for changelogs: compact JSON tagged with the state version.

A state is written as a row (`streams.rows`): `[version, [field, ...]]`. Workers before round
9 wrote a JSON object, `{"field": ..., "v": version}`; both are read (the first byte tells
them apart), so a changelog written by an older worker restores as it did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from streams import rows
from streams.plain import from_plain
from streams.rules.model import AccountState, LeadState, RefereeState, ReferrerState

S = TypeVar("S")

# Bump a state's version when its shape changes other than by a field appended with a default
# (rows.readable_after says which; tests/unit/rules/test_snapshot.py pins each version's
# layout), and teach decode_state to read the old one: an upgrade from each older version, of
# its objects in _UPGRADES (before rows) and of its rows in _ROW_UPGRADES.
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


# No state has changed shape since states were written as rows.
_ROW_UPGRADES: dict[tuple[type[Any], int], Callable[[list[Any]], list[Any]]] = {}


class StateVersionError(ValueError):
    """A stored state was written by a newer version of the code than this one."""


def encode_state(state: Any) -> bytes:
    return rows.dumps((STATE_VERSIONS[type(state)], state))


def decode_state(cls: type[S], data: bytes) -> S:
    if data[:1] != b"[":
        return _decode_object(cls, data)
    version, row = orjson.loads(data)
    for older in range(_check(cls, version), STATE_VERSIONS[cls]):
        row = _ROW_UPGRADES[cls, older](row)
    return rows.read(cls, row)


def _decode_object(cls: type[S], data: bytes) -> S:
    """A state as workers wrote it before rows: a JSON object with its version in "v"."""
    plain = orjson.loads(data)
    for older in range(_check(cls, plain.pop("v", 1)), STATE_VERSIONS[cls]):
        plain = _UPGRADES[cls, older](plain)
    return from_plain(cls, plain)


def _check(cls: type[Any], version: int) -> int:
    current = STATE_VERSIONS[cls]
    if version > current:
        raise StateVersionError(f"{cls.__name__} v{version} is newer than this code's v{current}")
    return version
