"""The fault harness: workers killed with SIGKILL while a producer feeds a known history.

A seeded scenario (thousands of leads, referrers reaching caps, refusals, duplicates,
out-of-order arrivals), with hostile records mixed into every input topic, is fed to the
input topics at a steady pace. Meanwhile the harness kills workers (SIGKILL, whole process
group) at random moments and restarts them, runs a second worker for part of the time so that
partitions move between them, and kills the broker with SIGKILL once and starts it again. When
the feed is over and the group has committed everything, `streams.faults.verify` holds the
output topics, read read_committed, to the project's own replay of the same inputs.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.app.pipeline import behind, named, offset_clients, pipeline_partitions
from streams.app.settings import Topics
from streams.contracts import AvroCodec, ClockAdvanced, InputEvent
from streams.faults.hostile import HostileRecord, hostile_records
from streams.faults.processes import WorkerProcess
from streams.faults.verify import Origin, Verdict, verify
from streams.kafka import broker
from streams.kafka.connection import client_kwargs
from streams.kafka.topics import TopicSpec, delete_app_topics, ensure_topics
from streams.rules import load_terms
from streams.scenario import ScenarioShape, generate

EVENTS_PER_LEAD = 3.45  # what streams.scenario makes on average
DAY_MS = 24 * 3600 * 1000
INPUT_MAX_BYTES = 4 * 1024 * 1024  # input topics accept the harness's records over 1 MiB


@dataclass(frozen=True)
class FaultPlan:
    """What the harness does; fractions are of the feed's duration."""

    events: int = 20_000
    kills: int = 10
    feed_seconds: float = 90.0
    second_worker: tuple[float, float] = (0.2, 0.7)
    broker_restart_at: float | None = 0.5
    broker_down_seconds: float = 20.0
    hostile_rounds: int = 2
    max_rewards: int | None = None  # a lower cap than the terms' 50, for short runs
    partitions: int = 8
    seed: int = 1
    settle_timeout: float = 600.0


@dataclass
class FaultReport:
    plan: FaultPlan
    kills: int = 0
    broker_restarts: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    recovery_seconds: list[float] = field(default_factory=list)
    events_sent: int = 0
    seconds: float = 0.0
    settled: bool = False
    behind: dict[str, int] = field(default_factory=dict)  # partitions never caught up
    verdict: Verdict = field(default_factory=Verdict)

    @property
    def ok(self) -> bool:
        return (
            self.settled
            and self.verdict.ok
            and not self.unexpected_exits
            and self.kills >= self.plan.kills
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.__dict__,
            "ok": self.ok,
            "kills": self.kills,
            "broker_restarts": self.broker_restarts,
            "unexpected_exits": self.unexpected_exits,
            "recovery_seconds": self.recovery_seconds,
            "events_sent": self.events_sent,
            "seconds": round(self.seconds, 1),
            "settled": self.settled,
            "behind": self.behind,
            "verdict": self.verdict.as_json(),
        }

    def lines(self) -> list[str]:
        v = self.verdict
        recovery = self.recovery_seconds
        rec = (
            f"median {statistics.median(recovery):.1f} s, max {max(recovery):.1f} s "
            f"over {len(recovery)} restarts"
            if recovery
            else "none measured"
        )
        return [
            f"events fed: {self.events_sent} (+{v.hostile_sent} hostile) in {self.seconds:.0f} s",
            f"worker kills (SIGKILL): {self.kills}; broker kill -9 + restart: "
            f"{self.broker_restarts}; unexpected worker exits: {len(self.unexpected_exits)}",
            f"recovery (restart -> its backlog committed): {rec}",
            f"group caught up: {'yes' if self.settled else f'NO, behind: {self.behind}'}",
            f"rewards checked: {v.rewards_expected}; present exactly once: "
            f"{v.rewards_exactly_once}; missing: {len(v.rewards_missing)}; "
            f"unexpected: {len(v.rewards_unexpected)}; changed: {len(v.rewards_changed)}",
            f"reward-granted records: {v.reward_records}; raw duplicates: "
            f"{v.reward_duplicates} (not identical: {v.reward_duplicates_not_identical})",
            f"decision records: {v.decision_records}; raw duplicates: {v.decision_duplicates}; "
            f"missing: {v.decisions_missing}",
            f"lost: inputs never applied {len(v.inputs_not_applied)}, messages between steps "
            f"{len(v.messages_lost)}, outputs {len(v.outputs_lost)}",
            f"leads both granted and rejected: {len(v.leads_granted_and_rejected)}",
            f"decided otherwise than the input replay (live arrival order, nothing lost): "
            f"{len(v.decided_otherwise)}; unexplained: {len(v.unexplained)}; benign: "
            f"{dict(v.benign)}",
            f"input records: {v.records_in} = decoded {v.records_decoded} + hostile "
            f"{v.hostile_sent}; dead letters: {v.dead_letter_records} "
            f"(raw duplicates {v.dead_letter_duplicates}); hostile not dead-lettered: "
            f"{len(v.hostile_not_dead_lettered)}; good records dead-lettered: "
            f"{len(v.good_dead_lettered)}",
            *(f"--- unexpected exit: {text}" for text in self.unexpected_exits),
            f"verdict: {'OK' if self.ok else 'FAILED'}",
        ]


def _history(plan: FaultPlan, rng: random.Random) -> list[InputEvent | ClockAdvanced]:
    """The scenario, and a final clock record past every hold so all due rewards are due."""
    leads = max(50, int(plan.events / EVENTS_PER_LEAD))
    shape = ScenarioShape(leads=leads, referrers=max(40, leads // 5), seed=plan.seed)
    events: list[InputEvent | ClockAdvanced] = list(generate(shape))
    last = max(e.occurred_at for e in events if isinstance(e, InputEvent))
    events.append(ClockAdvanced(at=last + 31 * DAY_MS))
    return events


def _terms_file(plan: FaultPlan, folder: Path) -> Path:
    text = (Path(__file__).parents[1] / "rules" / "default_terms.toml").read_text()
    if plan.max_rewards is not None:
        text = text.replace("max_rewards = 50", f"max_rewards = {plan.max_rewards}")
    path = folder / "terms.toml"
    path.write_text(text)
    return path


class _Run:
    """One harness run: the processes, the feed, the faults and their bookkeeping."""

    def __init__(
        self, bootstrap: str, plan: FaultPlan, folder: Path, broker_cfg: broker.BrokerConfig | None
    ) -> None:
        self.bootstrap = bootstrap
        self.plan = plan
        self.folder = folder
        self.broker_cfg = broker_cfg
        self.rng = random.Random(plan.seed)
        tag = f"{plan.seed}-{os.getpid()}-{int(time.time())}"
        self.app_id = f"faults-{tag}"
        self.topics = Topics(f"faults-{tag}.")
        self.terms = _terms_file(plan, folder)
        self.report = FaultReport(plan)
        self.workers: list[WorkerProcess] = []
        self.hostile: set[Origin] = set()
        self.feed_done = asyncio.Event()
        self.broker_down = False
        self._recoveries: list[tuple[float, dict[TopicPartition, int]]] = []

    def worker(self, n: int) -> WorkerProcess:
        return WorkerProcess(
            self.bootstrap,
            self.app_id,
            self.topics.prefix,
            self.folder / f"worker-{n}",
            self.terms,
            partitions=self.plan.partitions,
            commit_interval=0.5,
        )

    def watched(self) -> list[TopicPartition]:
        return pipeline_partitions(self.topics, self.app_id, self.plan.partitions)

    # -- the feed ------------------------------------------------------------------------

    async def feed(self) -> None:
        plan, codec = self.plan, AvroCodec()
        history = _history(plan, self.rng)
        samples: dict[str, InputEvent | ClockAdvanced] = {}
        for event in history:
            samples.setdefault(event.topic, event)
        bad = [r for _ in range(plan.hostile_rounds) for r in hostile_records(samples, self.rng)]
        feed: list[InputEvent | ClockAdvanced | HostileRecord] = list(history[:-1])
        for record in bad:
            feed.insert(self.rng.randrange(len(feed) + 1), record)
        feed.append(history[-1])  # the final clock record comes last
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            **client_kwargs(),
            enable_idempotence=True,
            max_request_size=INPUT_MAX_BYTES,
            request_timeout_ms=180_000,  # rides out the broker's restart
            linger_ms=5,
        )
        await producer.start()
        try:
            chunk = max(1, len(feed) // max(1, int(plan.feed_seconds * 10)))
            started = time.monotonic()
            for i in range(0, len(feed), chunk):
                pending: list[Any] = []
                for item in feed[i : i + chunk]:
                    if isinstance(item, HostileRecord):
                        meta = await producer.send_and_wait(
                            self.topics.name(item.topic), item.value, key=item.key
                        )
                        self.hostile.add((meta.topic, meta.partition, meta.offset))
                        continue
                    key = item.key.encode() if item.key else None
                    pending.append(
                        await producer.send(
                            self.topics.name(item.topic), codec.encode_record(item), key=key
                        )
                    )
                    self.report.events_sent += 1
                await asyncio.gather(*pending)
                ahead = started + plan.feed_seconds * (i + chunk) / len(feed) - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()
            self.feed_done.set()

    # -- the faults ----------------------------------------------------------------------

    def schedule(self) -> list[tuple[float, str]]:
        plan = self.plan
        at: list[tuple[float, str]] = [
            (self.rng.uniform(0.05, 1.0) * plan.feed_seconds, "kill") for _ in range(plan.kills)
        ]
        at.append((plan.second_worker[0] * plan.feed_seconds, "second worker starts"))
        at.append((plan.second_worker[1] * plan.feed_seconds, "second worker stops"))
        if plan.broker_restart_at is not None and self.broker_cfg is not None:
            at.append((plan.broker_restart_at * plan.feed_seconds, "broker killed"))
        return sorted(at)

    async def faults(self, say: Callable[[str], None]) -> None:
        started = time.monotonic()
        for moment, action in self.schedule():
            await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
            say(f"{time.monotonic() - started:6.1f}s {action}")
            if action == "kill":
                await self.kill_one()
            elif action == "second worker starts":
                self.workers.append(self.worker(1).start())
                await self.note_restart()
            elif action == "second worker stops":
                second = self.workers.pop()
                await asyncio.to_thread(second.stop)
            else:
                await self.restart_broker(say)

    async def kill_one(self) -> None:
        victim = self.rng.choice([w for w in self.workers if w.running] or self.workers)
        await asyncio.to_thread(victim.kill)
        self.report.kills += 1
        await asyncio.sleep(self.rng.uniform(0.2, 3.0))
        victim.start()
        await self.note_restart()

    async def restart_broker(self, say: Callable[[str], None]) -> None:
        assert self.broker_cfg is not None
        pid = broker.running_pid(self.broker_cfg)
        if pid is None:
            raise RuntimeError("the broker to restart does not run")
        self.broker_down = True
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(self.plan.broker_down_seconds)
        await asyncio.to_thread(broker.up, self.broker_cfg)
        self.broker_down = False
        self.report.broker_restarts += 1
        say("broker back")

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart a worker that died on its own (as systemd would) and say so; measure how
        long each restart took to commit the backlog it found."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **client_kwargs())
        probe = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, **client_kwargs())
        await admin.start()
        await probe.start()
        try:
            while not stop.is_set():
                for worker in self.workers:
                    if worker.proc is not None and worker.proc.poll() is not None:
                        code = worker.proc.returncode
                        if code != -signal.SIGKILL:
                            self.report.unexpected_exits.append(
                                f"worker {worker.web_port} exited {code}; its log ended:\n"
                                + worker.log_tail(40)
                            )
                            worker.start()
                if self._recoveries and not self.broker_down:
                    await self._check_recoveries(admin)
                await asyncio.sleep(0.5)
        finally:
            await probe.stop()
            await admin.close()

    async def note_restart(self) -> None:
        ends = await self._ends()
        if ends is not None:
            self._recoveries.append((time.monotonic(), ends))

    async def _ends(self) -> dict[TopicPartition, int] | None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, **client_kwargs())
        try:
            await consumer.start()
            ends: dict[TopicPartition, int] = await consumer.end_offsets(self.watched())
            return ends
        except Exception:
            return None  # the broker is away: this restart's recovery is not measured
        finally:
            await consumer.stop()

    async def _committed(self, admin: AIOKafkaAdminClient) -> dict[TopicPartition, int] | None:
        try:
            offsets = await admin.list_consumer_group_offsets(self.app_id)
        except Exception:
            return None
        return {tp: meta.offset for tp, meta in offsets.items()}

    async def _check_recoveries(self, admin: AIOKafkaAdminClient) -> None:
        committed = await self._committed(admin)
        if committed is None:
            return
        now = time.monotonic()
        left = []
        for since, ends in self._recoveries:
            if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                self.report.recovery_seconds.append(round(now - since, 1))
            else:
                left.append((since, ends))
        self._recoveries = left

    async def settle(self) -> None:
        """Wait until the group has committed every input and journal record, twice in a row."""
        async with offset_clients(self.bootstrap) as (admin, consumer):
            deadline = time.monotonic() + self.plan.settle_timeout
            quiet = 0
            while time.monotonic() < deadline:
                try:
                    left = await behind(admin, consumer, self.app_id, self.watched())
                except Exception:  # the broker may still be recovering
                    await asyncio.sleep(1.0)
                    continue
                self.report.behind = named(left)
                quiet = quiet + 1 if not left else 0
                if quiet >= 2:
                    self.report.settled = True
                    await self._check_recoveries(admin)
                    return
                await asyncio.sleep(1.0)


async def run_faults(
    bootstrap: str,
    plan: FaultPlan,
    *,
    broker_cfg: broker.BrokerConfig | None = None,
    folder: Path | None = None,
    say: Callable[[str], None] = print,
) -> FaultReport:
    """Run the harness against the broker at `bootstrap` (restarted once when `broker_cfg`
    names it) and return what the verifier found."""
    with tempfile.TemporaryDirectory(prefix="referral-faults-") as scratch:
        run = _Run(bootstrap, plan, folder or Path(scratch), broker_cfg)
        specs = [
            TopicSpec(name, plan.partitions, 1, {"max.message.bytes": str(INPUT_MAX_BYTES)})
            for name in run.topics.inputs
        ]
        await ensure_topics(bootstrap, specs)
        started = time.monotonic()
        run.workers.append(run.worker(0).start())
        await asyncio.to_thread(run.workers[0].wait_ready)
        stop = asyncio.Event()
        supervisor = asyncio.create_task(run.supervise(stop))
        try:
            say(f"feeding {plan.events} events over {plan.feed_seconds:.0f} s ({run.app_id})")
            await asyncio.gather(run.feed(), run.faults(say))
            say("feed and faults done; waiting for the group to catch up")
            await run.settle()
            run.report.seconds = time.monotonic() - started
        finally:
            stop.set()
            await supervisor
            for worker in run.workers:
                await asyncio.to_thread(worker.stop)
        say("verifying against the replay of the inputs")
        run.report.verdict = await verify(
            bootstrap, run.topics, run.app_id, load_terms(run.terms), run.hostile
        )
        if run.report.ok:
            # A passing run leaves nothing behind: every topic makes the next broker start
            # (and its restart in the next run) slower.
            await delete_app_topics(bootstrap, run.topics.prefix, run.app_id)
        else:
            say(f"topics kept for inspection: {run.topics.prefix}*, {run.app_id}-*")
            for worker in run.workers:
                say(f"--- worker {worker.web_port} log tail ---\n{worker.log_tail(30)}")
        return run.report
