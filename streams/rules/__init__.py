"""The referral rules R1-R14 as pure functions of (state, message) -> (state, outputs).

No Kafka, no Faust, no clock, no I/O: the live agents, the audit replay and the tests all run
these same steps. `Engine` runs them in one process in log order.

The hot modules may be compiled with mypyc (`streams.compile_core`); a compiled module older
than the sources is refused here rather than run.
"""

from streams.compile_core import refuse_stale

refuse_stale()

from streams.rules.account import account_step  # noqa: E402 - after the stale-build check
from streams.rules.engine import Engine, route_of  # noqa: E402
from streams.rules.lead import lead_step, next_timer, reward_id  # noqa: E402
from streams.rules.referee import referee_step  # noqa: E402
from streams.rules.referrer import referrer_step  # noqa: E402
from streams.rules.terms import Programme, TermsError, TermsVersion, load_terms, parse_terms  # noqa: E402

__all__ = [
    "Engine",
    "Programme",
    "TermsError",
    "TermsVersion",
    "account_step",
    "lead_step",
    "load_terms",
    "next_timer",
    "parse_terms",
    "referee_step",
    "referrer_step",
    "reward_id",
    "route_of",
]
