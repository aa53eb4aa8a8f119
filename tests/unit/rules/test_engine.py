"""The single-process engine that drives the steps for replays and tests."""

from __future__ import annotations

import gc

from streams.rules import Engine, load_terms
from tests.builders import DAY, T0, lead, paid, signed


def test_an_engine_is_freed_by_reference_counting_alone() -> None:
    """Replays pause the cyclic collector (streams.replay.quiet_gc): an engine caught in a
    reference cycle would keep every state of a million-event replay alive until it resumes."""
    programme = load_terms()
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        engine = Engine(programme)
        engine.run([lead(), signed(), paid()], as_of=T0 + 40 * DAY)
        del engine
        # Whatever the run left unreachable is what only the collector could free; a weak
        # reference would say less (a compiled Engine takes none).
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
