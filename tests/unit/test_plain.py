"""Plain data of records and states (streams.plain): the conversion decided once per class
from its field types gives exactly what the value-by-value conversion gives, for every record,
message and state a seeded scenario makes (journals and changelogs are written from it, and a
journal replay must reproduce live output, RULES.md R13)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from streams.plain import field_names, from_plain, is_record_type, to_plain
from streams.rules import account_step, load_terms, referee_step, referrer_step, route_of
from streams.rules.model import Emit, LeadState, LeadStatus, Route, Send
from streams.rules.shard import LeadShard
from streams.scenario import ScenarioShape, generate


def by_value(value: Any) -> Any:
    """The reference: every value converted by what it is, not by what its field says."""
    if is_record_type(type(value)):
        return {name: by_value(getattr(value, name)) for name in field_names(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [by_value(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(by_value(v) for v in value)
    return value


def run_recording(events: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """The steps driven as the engine drives them, keeping every message they send each
    other: (outputs, messages, final states)."""
    programme = load_terms()
    leads: dict[str, Any] = {}
    states: dict[Route, dict[str, Any]] = {route: {} for route in Route}
    steps = {
        Route.ACCOUNT: account_step,
        Route.REFEREE: referee_step,
        Route.REFERRER: referrer_step,
    }
    shard = LeadShard(programme, leads)
    outputs: list[Any] = []
    messages: list[Any] = []
    for event in events:
        send = route_of(event)
        emits: list[Emit] = [*shard.advance_to(event.occurred_at), *([send] if send else [])]
        for emit in emits:  # grows while iterated: messages in the order sent
            if not isinstance(emit, Send):
                outputs.append(emit)
                continue
            messages.append(emit.message)
            if emit.route is Route.LEAD:
                emits.extend(shard.handle(emit.message))
            else:
                table = states[emit.route]
                table[emit.key], sent = steps[emit.route](table.get(emit.key), emit.message)
                emits.extend(sent)
    finals = [*leads.values(), *(s for table in states.values() for s in table.values())]
    return outputs, messages, finals


def test_r13_every_record_message_and_state_converts_as_by_value() -> None:
    events = list(generate(ScenarioShape(referrers=60, leads=600, seed=5)))
    outputs, messages, states = run_recording(events)
    values = [*events, *outputs, *messages, *states]
    kinds = {type(value).__name__ for value in values}
    assert {"LeadState", "ReferrerState", "RewardGranted", "GrantSettled", "RefereeClaim"} <= kinds
    for value in values:
        assert to_plain(value) == by_value(value), type(value).__name__
        assert from_plain(type(value), to_plain(value)) == value, type(value).__name__


def test_r13_plain_data_with_a_field_absent_or_unknown_still_builds_its_record() -> None:
    """What an older or a newer writer left: an absent field takes its default, a field this
    code does not know is ignored, converted fields are converted either way."""
    state = LeadState("lead-1", LeadStatus.ACCEPTED, duplicates=frozenset({"ev-2", "ev-1"}))
    plain = to_plain(state)
    del plain["due_at"]
    assert from_plain(LeadState, plain) == state
    assert from_plain(LeadState, {**plain, "added_later": [1, 2]}) == state
    assert from_plain(LeadState, {"lead_id": "lead-1"}) == LeadState("lead-1")


class Colour(enum.Enum):
    RED = "red"


@dataclass(frozen=True)
class Loose:
    """Fields whose types leave the conversion open."""

    anything: Any
    pair: tuple[int, Colour]
    mapping: dict[str, Any]


def test_fields_of_open_types_convert_by_their_value() -> None:
    loose = Loose(anything=(Colour.RED, frozenset({3, 1})), pair=(1, Colour.RED), mapping={})
    assert to_plain(loose) == by_value(loose)
    assert to_plain(loose) == {"anything": ["red", [1, 3]], "pair": [1, "red"], "mapping": {}}
