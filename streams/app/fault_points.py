"""Fault injection for the crash tests: a worker that kills itself at a chosen point.

`REFERRAL_FAULT="<agent>:<point>[:<n>]"` makes the worker SIGKILL itself the n-th time (1 by
default) the agent reaches the point of its batch round (streams.app.staging):

- `computed`: the batch went through the rules; nothing of it sent, nothing stored (earlier
  rounds may be in flight);
- `delivered` (in the agent's committer): the round's outputs are acknowledged; its state is
  not written;
- `stored`: the round's state is written and flushed to its changelog; its offsets are not
  acked.

`REFERRAL_FAULT="<agent>:ahead:<n>"` kills nothing: the agent's first batch holding each
partition loses that partition's records below offset n, unacked, as Faust sometimes hands a
partition over from past where the group stands (streams.app.continuity seeks it back).

`REFERRAL_FAULT="<agent>:fetch:<n>"` kills nothing either: when the agent has computed its
n-th round, Faust's fetch loop is cancelled outside a rebalance, which faust-streaming takes
for a stop: the loop ends for good and the worker sits idle with records waiting (seen in a
two-worker drain; faust-streaming #175, #532). The worker's watchdog starts it again.

Unset (always, in production) it costs one attribute test per batch.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP, EventT

from streams.app.continuity import drop

ENV = "REFERRAL_FAULT"
POINTS = ("computed", "delivered", "stored")
AHEAD = "ahead"
FETCH = "fetch"
log = logging.getLogger("referral.worker")


@dataclass
class FaultPoints:
    agent: str | None = None
    point: str | None = None
    nth: int = 1
    seen: int = 0
    flush: Callable[[], Awaitable[None]] | None = None  # the producer's, before a kill
    end_fetch: Callable[[], None] | None = None  # cancels Faust's fetch loop (`fetch`)
    met: set[TP] = field(default_factory=set)  # partitions an `ahead` fault has seen

    @classmethod
    def from_env(cls) -> FaultPoints:
        spec = os.environ.get(ENV, "").strip()
        if not spec:
            return cls()
        agent, _, rest = spec.partition(":")
        point, _, nth = rest.partition(":")
        if point not in (*POINTS, AHEAD, FETCH) or not agent:
            points = "|".join((*POINTS, AHEAD, FETCH))
            raise ValueError(f"{ENV}={spec!r}: expected <agent>:<{points}>[:<n>]")
        return cls(agent, point, int(nth or 1))

    async def reached(self, agent: str, point: str) -> None:
        # a `fetch` fault strikes where a `computed` one would, and ends the loop, not the worker
        where = "computed" if self.point == FETCH else self.point
        if self.agent is None or agent != self.agent or point != where:
            return
        self.seen += 1
        if self.seen != self.nth:
            return
        if self.point == FETCH:
            if self.end_fetch is not None:
                log.warning("fault injection: Faust's fetch loop cancelled (%d)", self.seen)
                self.end_fetch()
            return
        if point == "stored" and self.flush is not None:
            await self.flush()  # the changelog holds the new state: the worst moment to die
        log.warning("fault injection: SIGKILL at %s:%s (%d)", agent, point, self.seen)
        os.kill(os.getpid(), signal.SIGKILL)

    def ahead(self, agent: str, events: list[EventT[Any]], consumer: Any) -> list[EventT[Any]]:
        """The batch as the agent gets it: under an `ahead` fault, the first batch holding a
        partition loses that partition's records below offset n (dropped unacked)."""
        if self.point != AHEAD or agent != self.agent:
            return events
        kept: list[EventT[Any]] = []
        met: set[TP] = set()
        for event in events:
            tp, offset = event.message.tp, event.message.offset
            if tp not in self.met and offset < self.nth:
                drop(event, consumer)
                log.warning("fault injection: %s[%d] offset %d skipped", *tp, offset)
            else:
                kept.append(event)
            met.add(tp)
        self.met |= met
        return kept
