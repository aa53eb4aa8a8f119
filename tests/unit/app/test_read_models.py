"""The query tables (streams.app.read_models): what `/leads/{id}` and `/referrers/{id}` show,
written by the agents that decide."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from streams.app.read_models import (
    history_with,
    in_referrer_view,
    view_message,
    view_update,
    view_with,
)
from streams.contracts import AvroCodec, CodecError, JsonlCodec, ReferralDecision, RewardGranted
from streams.contracts.records import DecisionStatus, RejectionReason
from streams.rules import referrer_step
from streams.rules.model import GrantRequested, GrantSettled, Send
from tests.builders import T0, sample_records

JSONL = JsonlCodec()
AVRO = AvroCodec()


def reward() -> RewardGranted:
    (found,) = [r for r in sample_records() if isinstance(r, RewardGranted)]
    return found


def decision(status: DecisionStatus, reason: RejectionReason | None = None) -> ReferralDecision:
    return ReferralDecision("lead-1", "ref-1", status, reason, 0, "2021-06-21", None)


def test_r8_a_lead_refused_at_the_cap_has_the_referrers_decision_in_its_history() -> None:
    """The cap is decided by the referrer step; the lead's history learns it from the
    GrantSettled message the lead's own agent applies."""
    _, emits = referrer_step(None, GrantRequested(reward(), max_rewards=0, max_total_cents=0))
    (settled,) = [e.message for e in emits if isinstance(e, Send)]
    assert isinstance(settled, GrantSettled)
    assert settled.decision is not None
    assert settled.decision.reason is RejectionReason.REFERRER_CAP_REACHED
    assert settled.decision in emits  # the very decision billing's topic gets
    history = history_with(None, JSONL.value(settled.decision))
    assert history is not None
    assert [d["reason"] for d in orjson.loads(history)] == ["referrer_cap_reached"]


def test_r7_a_granted_lead_has_the_grant_in_its_history() -> None:
    _, emits = referrer_step(None, GrantRequested(reward(), max_rewards=50, max_total_cents=250000))
    (settled,) = [e.message for e in emits if isinstance(e, Send)]
    assert settled.granted
    assert settled.decision is not None
    assert settled.decision.status is DecisionStatus.GRANTED


def test_r13_a_redelivered_decision_is_recorded_once() -> None:
    accepted = JSONL.value(decision(DecisionStatus.ACCEPTED))
    once = history_with(None, accepted)
    assert once is not None
    assert history_with(once, accepted) is None
    qualified = history_with(once, JSONL.value(decision(DecisionStatus.QUALIFIED)))
    assert qualified is not None
    assert [d["status"] for d in orjson.loads(qualified)] == ["ACCEPTED", "QUALIFIED"]


def test_r12_someone_elses_duplicate_submission_is_not_in_the_referrers_view() -> None:
    assert not in_referrer_view(decision(DecisionStatus.REJECTED, RejectionReason.DUPLICATE_LEAD))
    assert in_referrer_view(decision(DecisionStatus.REJECTED, RejectionReason.REFERRER_EXCLUDED))


def sent(made: ReferralDecision) -> tuple[str, str]:
    """(lead id, status) as the referrer view receives them, keyed by the referrer."""
    update = view_update(made.referrer_id.encode(), view_message(made), AVRO)
    assert update is not None
    referrer, lead_id, status = update
    assert referrer == made.referrer_id
    return lead_id, status


def test_the_referrers_view_keeps_open_leads_and_drops_closed_ones() -> None:
    view = view_with(None, *sent(decision(DecisionStatus.ACCEPTED)))
    assert orjson.loads(view) == {"lead-1": "ACCEPTED"}
    view = view_with(view, *sent(decision(DecisionStatus.EARNED)))
    assert orjson.loads(view) == {"lead-1": "EARNED"}
    granted = sent(decision(DecisionStatus.GRANTED))
    assert orjson.loads(view_with(view, *granted)) == {}


def test_r12_an_earlier_workers_avro_decision_reads_and_a_duplicate_submission_is_skipped() -> None:
    """Earlier workers sent the referrer view every decision, whole, in Avro."""
    decided = {"decided_at": T0}  # the contract wants a business time
    accepted = replace(decision(DecisionStatus.ACCEPTED), **decided)
    assert view_update(b"ref-1", AVRO.encode_record(accepted), AVRO) == (
        "ref-1",
        "lead-1",
        "ACCEPTED",
    )
    duplicate = replace(
        decision(DecisionStatus.REJECTED, RejectionReason.DUPLICATE_LEAD), **decided
    )
    assert view_update(b"ref-1", AVRO.encode_record(duplicate), AVRO) is None


@pytest.mark.parametrize(
    "message", [b"", b"[", b"{}", b'["lead-1"]', b'["lead-1","OPEN"]', b'[1,"ACCEPTED"]']
)
def test_what_is_not_a_referrer_view_message_is_refused(message: bytes) -> None:
    with pytest.raises(CodecError):
        view_update(b"ref-1", message, AVRO)
    with pytest.raises(CodecError):  # nor is a message without its referrer
        view_update(None, view_message(decision(DecisionStatus.ACCEPTED)), AVRO)
