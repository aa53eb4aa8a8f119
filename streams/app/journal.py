"""The internal journals' wire format: one JSON row a message, tagged with its type.

The journals (`<app>-lead-journal`, `-account-journal`, `-referee-journal`,
`-referrer-journal`) carry, per key, every message a step was given, in the order it was
given them, clock records included: replaying a journal through the same step reproduces its
outputs exactly. Times are integer milliseconds. A message is written as a row
(`streams.rows`): `["<type>", version, [field, ...]]`, the type naming the message's class.
Workers before round 9 wrote `{"type": "<type>", "v": version, "value": {"field": ...}}`;
both are read (the first byte tells them apart), so audits read journals written by older
workers. On the topics, a round's messages for one partition travel packed in one record
(streams.app.packing).
"""

from __future__ import annotations

from typing import Any

import orjson

from streams import rows
from streams.contracts.records import ClientSigned, InvoicePaid, LeadSubmitted, ReferralRefused
from streams.plain import from_plain
from streams.rules.model import (
    AccountOpened,
    ClockTick,
    Displaced,
    FirstGranted,
    FirstInvoicePaid,
    GrantRequested,
    GrantSettled,
    Message,
    RefereeChecked,
    RefereeClaim,
    Route,
)

VERSION = 1
MESSAGE_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        LeadSubmitted,
        ClientSigned,
        ReferralRefused,
        InvoicePaid,
        RefereeChecked,
        Displaced,
        FirstInvoicePaid,
        GrantSettled,
        ClockTick,
        AccountOpened,
        RefereeClaim,
        FirstGranted,
        GrantRequested,
    )
}
JOURNALS: dict[Route, str] = {
    Route.LEAD: "lead-journal",
    Route.ACCOUNT: "account-journal",
    Route.REFEREE: "referee-journal",
    Route.REFERRER: "referrer-journal",
}


def app_topic(app_id: str, name: str) -> str:
    """A topic of the worker group `app_id`'s own: its journals, its referrer view (Faust
    names its changelogs and its leader topic the same way)."""
    return f"{app_id}-{name}"


def journal_topic(app_id: str, route: Route) -> str:
    """The Kafka topic of a step's journal for the worker group `app_id`."""
    return app_topic(app_id, JOURNALS[route])


class JournalError(ValueError):
    """A journal record this worker cannot read."""


def encode_message(message: Message | ClockTick) -> bytes:
    return rows.dumps((type(message).__name__, VERSION, message))


def decode_message(data: bytes) -> Message | ClockTick:
    try:
        if data[:1] == b"[":
            name, version, row = orjson.loads(data)
            message: Message | ClockTick = rows.read(_message_type(name, version), row)
        else:  # as workers wrote it before rows
            envelope = orjson.loads(data)
            cls = _message_type(envelope["type"], envelope.get("v", 1))
            message = from_plain(cls, envelope["value"])
    except JournalError:
        raise
    except Exception as exc:
        raise JournalError(f"unreadable journal record: {type(exc).__name__}: {exc}") from exc
    return message


def _message_type(name: str, version: int) -> type[Any]:
    if version > VERSION:
        raise JournalError(f"{name} v{version} is newer than this worker")
    return MESSAGE_TYPES[name]
