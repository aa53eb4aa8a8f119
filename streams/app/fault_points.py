"""Fault injection for the crash tests: a worker that kills itself at a chosen point.

`REFERRAL_FAULT="<agent>:<point>[:<n>]"` makes the worker SIGKILL itself the n-th time (1 by
default) the agent reaches the point of its batch round (streams.app.staging):

- `computed`: the batch went through the rules; nothing of it sent, nothing stored (earlier
  rounds may be in flight);
- `delivered` (in the agent's committer): the round's outputs are acknowledged; its state is
  not written;
- `stored`: the round's state is written and flushed to its changelog; its offsets are not
  acked.

Unset (always, in production) it costs one attribute test per batch.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ENV = "REFERRAL_FAULT"
POINTS = ("computed", "delivered", "stored")
log = logging.getLogger("referral.worker")


@dataclass
class FaultPoints:
    agent: str | None = None
    point: str | None = None
    nth: int = 1
    seen: int = 0
    flush: Callable[[], Awaitable[None]] | None = None  # the producer's, before a kill

    @classmethod
    def from_env(cls) -> FaultPoints:
        spec = os.environ.get(ENV, "").strip()
        if not spec:
            return cls()
        agent, _, rest = spec.partition(":")
        point, _, nth = rest.partition(":")
        if point not in POINTS or not agent:
            raise ValueError(f"{ENV}={spec!r}: expected <agent>:<{'|'.join(POINTS)}>[:<n>]")
        return cls(agent, point, int(nth or 1))

    async def reached(self, agent: str, point: str) -> None:
        if self.agent is None or agent != self.agent or point != self.point:
            return
        self.seen += 1
        if self.seen < self.nth:
            return
        if point == "stored" and self.flush is not None:
            await self.flush()  # the changelog holds the new state: the worst moment to die
        log.warning("fault injection: SIGKILL at %s:%s (%d)", agent, point, self.seen)
        os.kill(os.getpid(), signal.SIGKILL)
