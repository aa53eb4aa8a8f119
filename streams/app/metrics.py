"""Operational counters of one worker, rendered in the Prometheus text format.

Counters live in memory: they describe this process (events it handled, dead letters it wrote),
never a decision, so losing them on restart loses nothing the rules need.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from streams.kafka.fetch_sessions import FETCH_REQUESTS, SESSION_RESETS

# Upper bounds (seconds) of the record-age histogram's buckets: a hop of a caught-up worker
# takes milliseconds, a backlog seconds and more.
AGE_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.events = Counter[str]()  # by input topic
        self.dead_letters = Counter[str]()  # by error class
        self.rewards_granted = 0
        self.overdue_grants = 0  # granted after due_by in wall-clock time (R10)
        self.decisions = Counter[str]()  # by status
        self.ticks = 0
        self.fetch_restarts = 0  # Faust's fetch loop found ended and started again
        self.rounds = Counter[str]()  # batch rounds, by agent
        self.round_records = Counter[str]()  # records taken through them, by agent
        self.round_messages = Counter[str]()  # messages those records held, by agent
        # by agent: per bucket of AGE_BUCKETS (and one past the last), records that were
        # that old (since their producer created them) when a round took them; their sum
        self.record_ages: defaultdict[str, list[int]] = defaultdict(
            lambda: [0] * (len(AGE_BUCKETS) + 1)
        )
        self.record_age_sum: defaultdict[str, float] = defaultdict(float)
        # seconds spent, by (agent, phase): in the agent, waiting for a batch, the rules and
        # sending (outputs handed to the producer, waiting for room among the rounds in
        # flight); in its committer, a round's outputs acked, then its changelog stored
        # (the two overlap the agent's phases)
        self.round_seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._gauges: list[Callable[[], Iterable[tuple[str, dict[str, str], float]]]] = []

    def taken(self, agent: str, ages: Iterable[float]) -> None:
        """Records a round of `agent` took, by their age in seconds."""
        buckets = self.record_ages[agent]
        total = 0.0
        for age in ages:
            buckets[bisect_left(AGE_BUCKETS, age)] += 1
            total += age
        self.record_age_sum[agent] += total

    def add_gauges(self, source: Callable[[], Iterable[tuple[str, dict[str, str], float]]]) -> None:
        """Register a function yielding (name, labels, value) samples at scrape time."""
        self._gauges.append(source)

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        def by_label(name: str, label: str, counts: Counter[str], help_text: str) -> None:
            family(name, "counter", help_text)
            for value, count in sorted(counts.items()):
                lines.append(f'{name}{{{label}="{value}"}} {count}')

        by_label("referral_events_total", "topic", self.events, "Input records handled, by topic.")
        by_label(
            "referral_dead_letters_total",
            "reason",
            self.dead_letters,
            "Records dead-lettered, by reason.",
        )
        by_label(
            "referral_decisions_total", "status", self.decisions, "Decisions emitted, by status."
        )
        family("referral_rewards_granted_total", "counter", "reward-granted records emitted.")
        lines.append(f"referral_rewards_granted_total {self.rewards_granted}")
        family(
            "referral_overdue_grants_total",
            "counter",
            "Rewards emitted after their due_by (a processor that was down, R10).",
        )
        lines.append(f"referral_overdue_grants_total {self.overdue_grants}")
        family("referral_clock_ticks_total", "counter", "Clock records written while caught up.")
        lines.append(f"referral_clock_ticks_total {self.ticks}")
        family(
            "referral_fetch_restarts_total",
            "counter",
            "Times Faust's fetch loop was found ended outside a stop and started again.",
        )
        lines.append(f"referral_fetch_restarts_total {self.fetch_restarts}")
        by_label(
            "referral_fetch_requests_total",
            "kind",
            FETCH_REQUESTS,
            "Fetch requests sent, by kind (full: every partition named; incremental: only "
            "what moved in a fetch session).",
        )
        by_label(
            "referral_fetch_session_resets_total",
            "reason",
            SESSION_RESETS,
            "Fetch sessions started again with a full fetch, by reason (error: unknown to the "
            "broker; unanswered: a fetch failed or was cancelled; refused: the broker's "
            "session cache is full).",
        )
        by_label(
            "referral_rounds_total",
            "agent",
            self.rounds,
            "Batch rounds (rules, send, store), by agent.",
        )
        by_label(
            "referral_round_records_total",
            "agent",
            self.round_records,
            "Records taken through rounds, by agent.",
        )
        by_label(
            "referral_round_messages_total",
            "agent",
            self.round_messages,
            "Messages those records held (a packed record holds many), by agent.",
        )
        family(
            "referral_record_age_seconds",
            "histogram",
            "Age of a record (since its producer created it) when a round took it, by agent: "
            "a hop's latency.",
        )
        for agent, buckets in sorted(self.record_ages.items()):
            count = 0
            for bound, n in zip([*map(str, AGE_BUCKETS), "+Inf"], buckets, strict=True):
                count += n
                lines.append(
                    f'referral_record_age_seconds_bucket{{agent="{agent}",le="{bound}"}} {count}'
                )
            lines.append(
                f'referral_record_age_seconds_sum{{agent="{agent}"}} '
                f"{self.record_age_sum[agent]:.3f}"
            )
            lines.append(f'referral_record_age_seconds_count{{agent="{agent}"}} {count}')
        family(
            "referral_round_seconds_total",
            "counter",
            "Seconds of rounds by agent and phase (wait: for a batch; rules; send: outputs "
            "handed over, room among the rounds in flight; acked: outputs acknowledged; "
            "store: changelog acknowledged; the last two overlap the others).",
        )
        for (agent, phase), seconds in sorted(self.round_seconds.items()):
            lines.append(
                f'referral_round_seconds_total{{agent="{agent}",phase="{phase}"}} {seconds:.3f}'
            )
        family("referral_consumer_lag", "gauge", "Records not yet read, by topic and partition.")
        for source in self._gauges:
            for name, labels, value in source():
                rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                lines.append(f"{name}{{{rendered}}} {value:g}")
        return "\n".join(lines) + "\n"
