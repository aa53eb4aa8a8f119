"""`explain` tells a lead's story from the journals; a displaced lead's names who displaced it
(R2 in business time)."""

from __future__ import annotations

from streams.audit.explain import lead_story
from streams.audit.journal_replay import replay_journals
from streams.audit.sources import Journals
from streams.rules.model import Displaced, RefereeChecked, Route
from tests.builders import HOUR, T0, lead
from tests.unit.rules.conftest import terms


def test_r2_a_displaced_leads_story_names_the_lead_that_displaced_it() -> None:
    submitted = lead("lead-1", T0 + HOUR)
    journal = [
        (0, submitted),
        (1, RefereeChecked("lead-1", True)),
        (2, Displaced("lead-1", "id-1", "lead-2", "ev-lead-2")),
    ]
    replay = replay_journals(Journals({Route.LEAD: {0: journal}}), terms())
    story = lead_story(replay, "lead-1")
    assert story is not None
    (displaced,) = [e for e in story["events"] if e["what"] == "displaced (R2)"]
    assert "lead-2" in displaced["details"]
    assert "ev-lead-2" in displaced["details"]
    (rejected,) = [d for d in story["decisions"] if d["status"] == "REJECTED"]
    assert rejected["reason"] == "referee_already_known"
    assert rejected["cause_event_id"] == "ev-lead-2"
