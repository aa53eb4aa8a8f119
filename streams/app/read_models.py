"""The query tables' values: a lead's decisions, a referrer's open leads (bytes in, bytes out).

The worker's agents write them (the leads agent a lead's history, the referrer-view agent a
referrer's open leads); `make bench-state` writes them the same way to fill the tables at
size. Pure functions of the stored value and one decision.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.contracts import ReferralDecision
from streams.contracts.records import DecisionStatus, RejectionReason

CLOSED_STATUSES = {DecisionStatus.GRANTED, DecisionStatus.REJECTED}


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


def view_with(stored: bytes | None, decision: ReferralDecision) -> bytes:
    """A referrer's open leads (lead id -> status) after `decision`: closed leads leave."""
    view = orjson.loads(stored or b"{}")
    if decision.status in CLOSED_STATUSES:
        view.pop(decision.lead_id, None)
    else:
        view[decision.lead_id] = decision.status.value
    return orjson.dumps(view, option=orjson.OPT_SORT_KEYS)
