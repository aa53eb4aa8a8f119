"""The internal journals' wire format: one JSON object a message, tagged with its type.

The journals (`<app>-lead-journal`, `-account-journal`, `-referee-journal`,
`-referrer-journal`) carry, per key, every message a step was given, in the order it was
given them, clock records included: replaying a journal through the same step reproduces its
outputs exactly. Times are integer milliseconds; the tag names the message type and `v` its
version, so audits can read journals written by older workers. On the topics, a round's
messages for one partition travel packed in one record (streams.app.packing).
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.contracts.records import ClientSigned, InvoicePaid, LeadSubmitted, ReferralRefused
from streams.plain import from_plain, to_plain
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
    envelope = {"type": type(message).__name__, "v": VERSION, "value": to_plain(message)}
    # compact UTF-8 JSON, as json.dumps(separators=(",", ":"), ensure_ascii=False) writes it
    return orjson.dumps(envelope)


def decode_message(data: bytes) -> Message | ClockTick:
    try:
        envelope = orjson.loads(data)
        cls = MESSAGE_TYPES[envelope["type"]]
        if envelope.get("v", 1) > VERSION:
            raise JournalError(f"{envelope['type']} v{envelope['v']} is newer than this worker")
        message: Message | ClockTick = from_plain(cls, envelope["value"])
    except JournalError:
        raise
    except Exception as exc:
        raise JournalError(f"unreadable journal record: {type(exc).__name__}: {exc}") from exc
    return message
