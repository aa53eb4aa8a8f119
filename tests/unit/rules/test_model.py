"""The core's state records copy like the stock named tuples, only cheaper."""

from __future__ import annotations

import pytest

from streams.rules.model import LeadState, LeadStatus, ReferrerState


def test_replace_returns_a_new_record_of_the_same_type_with_only_the_named_fields_changed() -> None:
    lead = LeadState("lead-1")
    moved = lead._replace(status=LeadStatus.EARNED, due_at=5)
    assert type(moved) is LeadState
    assert moved == LeadState("lead-1", status=LeadStatus.EARNED, due_at=5)
    assert lead == LeadState("lead-1")  # the original is untouched


def test_replace_refuses_a_field_the_record_does_not_have() -> None:
    with pytest.raises(ValueError, match="ReferrerState has no field 'granted_total'"):
        ReferrerState("ref-1")._replace(granted_total=1)
