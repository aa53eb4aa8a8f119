"""Helpers for rule tests: terms with overrides, and a one-call run of the engine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.contracts import ClockAdvanced, InputEvent, ReferralDecision, RewardGranted
from streams.rules import Engine, Programme, parse_terms
from tests.builders import terms_toml


def terms(**changes: Any) -> Programme:
    """The shipped terms with `changes` (the keywords of tests.builders.terms_toml)."""
    return parse_terms(terms_toml(**changes))


@dataclass
class Run:
    engine: Engine
    outputs: list[ReferralDecision | RewardGranted]
    decisions: list[ReferralDecision]
    rewards: list[RewardGranted]

    def story(self, lead_id: str) -> list[str]:
        """The lead's decisions as STATUS or STATUS:reason, in order."""
        return [
            f"{d.status.value}:{d.reason.value}" if d.reason else d.status.value
            for d in self.decisions
            if d.lead_id == lead_id
        ]

    def reward(self, lead_id: str) -> RewardGranted:
        (found,) = [r for r in self.rewards if r.lead_id == lead_id]
        return found


def run(
    events: Iterable[InputEvent | ClockAdvanced],
    *,
    as_of: int | None = None,
    programme: Programme | None = None,
) -> Run:
    engine = Engine(programme or terms())
    outputs = engine.run(events, as_of=as_of)
    return Run(
        engine,
        outputs,
        [o for o in outputs if isinstance(o, ReferralDecision)],
        [o for o in outputs if isinstance(o, RewardGranted)],
    )
