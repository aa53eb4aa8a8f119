"""The referral rules R1-R14 as pure functions of (state, message) -> (state, outputs).

No Kafka, no Faust, no clock, no I/O: the live agents, the audit replay and the tests all run
these same steps. `Engine` runs them in one process in log order.
"""

from streams.rules.account import account_step
from streams.rules.engine import Engine, route_of
from streams.rules.lead import lead_step, next_timer, reward_id
from streams.rules.referee import referee_step
from streams.rules.referrer import referrer_step
from streams.rules.terms import Programme, TermsError, TermsVersion, load_terms, parse_terms

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
