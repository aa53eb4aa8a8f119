"""The query tables' values: a lead's decisions, a referrer's open leads (bytes in, bytes out).

The worker's agents write them (the leads agent a lead's history, the referrer-view agent a
referrer's open leads); `make bench-state` writes them the same way to fill the tables at
size. Pure functions of the stored value and one decision.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.contracts import AvroCodec, CodecError, ReferralDecision
from streams.contracts.codec import MARKER as AVRO_MARKER
from streams.contracts.records import DecisionStatus, RejectionReason

CLOSED_STATUSES = {DecisionStatus.GRANTED.value, DecisionStatus.REJECTED.value}
STATUSES = frozenset(status.value for status in DecisionStatus)


def history_with(stored: bytes | None, decision: dict[str, Any]) -> bytes | None:
    """A lead's decisions (JSONL values, in order) with `decision` added; None when it is
    there already (a redelivered decision is recorded once)."""
    history: list[dict[str, Any]] = orjson.loads(stored or b"[]")
    if decision in history:
        return None
    history.append(decision)
    return orjson.dumps(history)


def in_referrer_view(decision: ReferralDecision) -> bool:
    """Whether the decision is about one of its referrer's leads: someone else's duplicate
    submission of a lead is not."""
    return decision.reason is not RejectionReason.DUPLICATE_LEAD


def view_message(decision: ReferralDecision) -> bytes:
    """What the referrer view is sent about a decision: its lead and status, all the view
    keeps (JSON `["lead-1","ACCEPTED"]`; the whole decision in Avro cost its agent a decode
    many times what it needed)."""
    return orjson.dumps([decision.lead_id, decision.status.value])


def view_update(key: bytes | None, message: bytes, codec: AvroCodec) -> tuple[str, str, str] | None:
    """(referrer, lead id, status) of a referrer-view message keyed by its referrer; None for
    a decision the view does not hold (earlier workers sent every decision, whole, in Avro);
    CodecError if it is not one."""
    if message[:2] == AVRO_MARKER:
        decision = codec.decode_record("referral-decisions", message)
        if not isinstance(decision, ReferralDecision):
            raise CodecError("not a referral decision")
        if not in_referrer_view(decision):
            return None
        return decision.referrer_id, decision.lead_id, decision.status.value
    if not isinstance(key, bytes):
        raise CodecError("a referrer-view message without its referrer (the key)")
    try:
        lead_id, status = orjson.loads(message)
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise CodecError(f"not a referrer-view message: {exc}") from exc
    if not isinstance(lead_id, str) or status not in STATUSES:
        raise CodecError(f"not a referrer-view message: {message[:100]!r}")
    return key.decode(), lead_id, status


def view_with(stored: bytes | None, lead_id: str, status: str) -> bytes:
    """A referrer's open leads (lead id -> status) with `lead_id` now at `status`: closed
    leads leave."""
    view = orjson.loads(stored or b"{}")
    if status in CLOSED_STATUSES:
        view.pop(lead_id, None)
    else:
        view[lead_id] = status
    return orjson.dumps(view, option=orjson.OPT_SORT_KEYS)
