"""The live topology: Faust agents and tables around the pure rules core (one wiring point).

    inputs (Avro) --ingest--> lead journal ----leads----> decisions, account/referee/referrer
                          \\-> account journal -accounts-> lead journal
                               referee journal -referees-> lead journal
                               referrer journal -referrers-> reward-granted, decisions, lead

Every step's state has exactly one writer: the agent that owns the journal partition its key
hashes to. Journals record, per partition, each message in the order it was applied, clock
records included, so replaying them reproduces every output. All output goes through
`_publish`, the one step that can become transactional (Faust's own exactly_once groups sends
by destination partition, see README); rewards are safe without it because reward ids are
derived from the lead and every step dedupes by state.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any, TypeVar

import faust
from aiokafka.partitioner import murmur2
from faust.types import EventT, StreamT

from streams.app.journal import JOURNALS, JournalError, decode_message, encode_message
from streams.app.metrics import Metrics
from streams.app.settings import ClockMode, Settings
from streams.contracts import (
    AvroCodec,
    ClockAdvanced,
    CodecError,
    InputEvent,
    JsonlCodec,
    ReferralDecision,
    RejectionReason,
    RewardGranted,
    dead_letter,
)
from streams.contracts.records import DecisionStatus
from streams.kafka.topics import TopicSpec
from streams.rules import Programme, account_step, referee_step, referrer_step, route_of
from streams.rules.model import (
    AccountState,
    ClockTick,
    Emit,
    LeadState,
    RefereeState,
    ReferrerState,
    Route,
    Send,
    ShardMessage,
)
from streams.rules.shard import LeadShard, pending_timers
from streams.rules.snapshot import decode_state, encode_state

log = logging.getLogger("referral.worker")
S = TypeVar("S")
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}
CLOSED_STATUSES = {DecisionStatus.GRANTED, DecisionStatus.REJECTED}
Handler = Callable[[EventT[Any]], Awaitable[list[Emit]]]


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as Java clients do)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def now_ms() -> int:
    """Wall-clock time: for clock records and operational metrics only, never in a decision."""
    return int(time.time() * 1000)


class StateTable(MutableMapping[str, S]):
    """A Faust table of encoded state values, seen as a mapping of str keys to state."""

    def __init__(self, table: Any, cls: type[S]) -> None:
        self.table = table
        self.cls = cls

    def __getitem__(self, key: str) -> S:
        data = self.table.get(key.encode())
        if data is None:
            raise KeyError(key)
        return decode_state(self.cls, data)

    def get(self, key: str, default: Any = None) -> Any:
        data = self.table.get(key.encode())
        return default if data is None else decode_state(self.cls, data)

    def __setitem__(self, key: str, value: S) -> None:
        self.table[key.encode()] = encode_state(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self) -> Iterator[tuple[str, S]]:  # type: ignore[override]
        for key, data in self.table.items():
            yield key.decode(), decode_state(self.cls, data)


class ReferralWorker:
    """Builds the Faust app for `settings`; `app` is what a Faust worker runs."""

    def __init__(self, settings: Settings, programme: Programme) -> None:
        self.settings = settings
        self.programme = programme
        self.codec = AvroCodec()
        self.jsonl = JsonlCodec()  # formatters are compiled once per topic and instance
        self.metrics = Metrics()
        self.partitions = settings.partitions
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.bootstrap}",
            store="rocksdb://",
            datadir=str(settings.state_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication,
            processing_guarantee=settings.guarantee.value,
            web_enabled=True,
            web_port=settings.web_port,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            table_standby_replicas=0,
            broker_commit_interval=settings.commit_interval_s,
        )
        self._shards: dict[int, LeadShard] = {}
        self._timers_by_partition: dict[int, list[tuple[int, str]]] | None = None
        self._lag_clients: tuple[Any, Any] | None = None
        self._build_topics()
        self._build_tables()
        self._build_agents()
        self._build_views()
        self._build_clock()
        self.metrics.add_gauges(self._lag_samples)

    # -- topics and tables ---------------------------------------------------------------

    def _journal_name(self, route: Route) -> str:
        return f"{self.settings.journal_prefix}{JOURNALS[route]}"

    def _build_topics(self) -> None:
        app, names, p = self.app, self.settings.topics, self.partitions
        self.input_topic = app.topic(*names.inputs, partitions=p, **RAW)
        self.journals = {
            route: app.topic(self._journal_name(route), partitions=p, internal=True, **RAW)
            for route in Route
        }
        self.rewards_topic = app.topic(names.reward_granted, partitions=p, **RAW)
        self.decisions_topic = app.topic(names.decisions, partitions=p, **RAW)
        self.dead_letter_topic = app.topic(names.dead_letters, partitions=p, **RAW)
        self.referrer_view_topic = app.topic(
            f"{self.settings.journal_prefix}referrer-view", partitions=p, internal=True, **RAW
        )

    def _table(self, name: str) -> Any:
        # bytes key and value types make Faust use the raw serializer for the changelog
        return self.app.Table(
            name, default=None, partitions=self.partitions, key_type=bytes, value_type=bytes
        )

    def _build_tables(self) -> None:
        self.lead_table = self._table("leads")
        self.clock_table = self._table("lead-clocks")
        self.account_table = self._table("accounts")
        self.referee_table = self._table("referees")
        self.referrer_table = self._table("referrers")
        self.lead_history = self._table("lead-history")
        self.referrer_leads = self._table("referrer-leads")
        self.leads = StateTable(self.lead_table, LeadState)

    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the worker needs, with the partition count co-partitioning requires."""
        p, r = self.partitions, self.settings.replication
        names = [
            *self.settings.topics.inputs,
            self.settings.topics.reward_granted,
            self.settings.topics.decisions,
            self.settings.topics.dead_letters,
            *(self._journal_name(route) for route in Route),
            f"{self.settings.journal_prefix}referrer-view",
        ]
        specs = [TopicSpec(name, p, r) for name in names]
        # Faust elects the leader (who writes clock records) by who owns this topic's only
        # partition; created late by Faust, it can miss the first assignment.
        specs.append(TopicSpec(f"{self.settings.app_id}-__assignor-__leader", 1, r))
        compacted = {"cleanup.policy": "compact"}
        for table in self.app.tables.values():
            specs.append(TopicSpec(table.changelog_topic.get_topic_name(), p, r, compacted))
        return specs

    # -- the one output step -------------------------------------------------------------

    async def _publish(self, emits: Iterable[Emit]) -> None:
        """Send every output and internal message: the one place the rules' results leave."""
        lead_journal = self.journals[Route.LEAD]
        for emit in emits:
            if isinstance(emit, Send):
                value = encode_message(emit.message)
                if isinstance(emit.message, ClockTick):
                    # A clock record moves every lead shard: one copy per partition.
                    for partition in range(self.partitions):
                        await lead_journal.send(value=value, partition=partition)
                else:
                    await self.journals[emit.route].send(key=emit.key.encode(), value=value)
            elif isinstance(emit, RewardGranted):
                await self.rewards_topic.send(
                    key=emit.referrer_id.encode(), value=self.codec.encode_record(emit)
                )
                self.metrics.rewards_granted += 1
                if now_ms() > emit.due_by:
                    self.metrics.overdue_grants += 1
                    log.warning("reward for lead %s emitted after its due_by", emit.lead_id)
            else:
                await self.decisions_topic.send(
                    key=emit.lead_id.encode(), value=self.codec.encode_record(emit)
                )
                self.metrics.decisions[emit.status.value] += 1

    async def _dead_letter(self, event: EventT[Any], error: BaseException) -> None:
        message = event.message
        record = dead_letter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            error=error,
            now_ms=now_ms(),
        )
        self.metrics.dead_letters[record.error_class] += 1
        log.warning(
            "dead-lettered %s[%d]@%d: %s",
            message.topic,
            message.partition,
            message.offset,
            record.error_message,
        )
        await self.dead_letter_topic.send(key=message.key, value=self.codec.encode_record(record))

    def _agent(self, topic: Any, name: str, handle: Handler) -> None:
        """An agent (concurrency 1, faust-streaming #606) applying `handle` to each event;
        whatever `handle` raises sends the event to the dead letters, never stops the worker."""

        async def agent(stream: StreamT[Any]) -> AsyncIterator[None]:
            async for event in stream.events():
                try:
                    emits = await handle(event)
                except Exception as exc:
                    if not isinstance(exc, CodecError):
                        log.exception("processing %s failed", event.message.topic)
                    await self._dead_letter(event, exc)
                else:
                    await self._publish(emits)
                yield None

        self.app.agent(topic, name=name, concurrency=1)(agent)

    # -- agents --------------------------------------------------------------------------

    def _build_agents(self) -> None:
        self._agent(self.input_topic, "ingest", self._ingest)
        self._agent(self.journals[Route.LEAD], "leads", self._lead)
        keyed: list[tuple[Route, Any, type[Any], Callable[[Any, Any], Any]]] = [
            (Route.ACCOUNT, self.account_table, AccountState, account_step),
            (Route.REFEREE, self.referee_table, RefereeState, referee_step),
            (Route.REFERRER, self.referrer_table, ReferrerState, referrer_step),
        ]
        for route, table, cls, step in keyed:
            self._agent(
                self.journals[route], route.value, self._keyed(StateTable(table, cls), step)
            )
        self._agent(self.decisions_topic, "lead-history", self._record_decision)
        self._agent(self.referrer_view_topic, "referrer-view", self._record_referrer_view)

        @self.app.on_partitions_revoked.connect
        async def forget_shards(*_: Any, **__: Any) -> None:
            # rebuilt from the tables for the partitions that come next
            self._shards.clear()
            self._timers_by_partition = None

    async def _ingest(self, event: EventT[Any]) -> list[Emit]:
        message = event.message
        contract = self.settings.topics.inputs[message.topic]
        kafka_ms = int(message.timestamp * 1000) if message.timestamp else None
        record = self.codec.decode_record(contract, event.value, kafka_timestamp_ms=kafka_ms)
        self.metrics.events[contract] += 1
        if isinstance(record, ClockAdvanced):
            return [Send(Route.LEAD, "", ClockTick(record.at))]
        if not isinstance(record, InputEvent):
            raise CodecError(f"{type(record).__name__} is not an input event")
        return [route_of(record)]

    def _shard(self, partition: int) -> LeadShard:
        shard = self._shards.get(partition)
        if shard is None:
            if self._timers_by_partition is None:
                # One scan of the table after a rebalance, not one per partition.
                self._timers_by_partition = defaultdict(list)
                for due, lead_id in pending_timers(self.leads.items(), self.programme):
                    self._timers_by_partition[partition_of(lead_id, self.partitions)].append(
                        (due, lead_id)
                    )
            stored = self.clock_table.get(str(partition).encode())
            shard = LeadShard(self.programme, self.leads, int(stored) if stored else None)
            count = shard.rebuild_timers(self._timers_by_partition.pop(partition, []))
            log.info("lead shard %d: clock %s, %d timers", partition, shard.clock, count)
            self._shards[partition] = shard
        return shard

    async def _lead(self, event: EventT[Any]) -> list[Emit]:
        partition = event.message.partition
        message = decode_message(event.value)
        if not isinstance(message, ShardMessage):
            raise JournalError(f"{type(message).__name__} does not belong in the lead journal")
        shard = self._shard(partition)
        before = shard.clock
        emits = shard.handle(message)
        if shard.clock != before:
            self.clock_table[str(partition).encode()] = str(shard.clock).encode()
        return emits

    def _keyed(self, states: StateTable[Any], step: Callable[[Any, Any], Any]) -> Handler:
        async def handle(event: EventT[Any]) -> list[Emit]:
            if not isinstance(event.key, bytes):
                raise JournalError("a journal record without a key")
            key = event.key.decode()
            before = states.get(key)
            after, emits = step(before, decode_message(event.value))
            if after != before:
                states[key] = after
            return list(emits)

        return handle

    # -- read models for the queries (projections of the output topics) --------------------

    async def _record_decision(self, event: EventT[Any]) -> list[Emit]:
        """lead-history: each lead's decisions in order; and the referrer's view of its leads."""
        decision = self.codec.decode_record("referral-decisions", event.value)
        if not isinstance(decision, ReferralDecision):
            raise CodecError("not a referral decision")
        value = self.jsonl.value(decision)
        history: list[dict[str, Any]] = json.loads(self.lead_history.get(event.key) or b"[]")
        if value not in history:  # a redelivered decision is recorded once
            history.append(value)
            self.lead_history[event.key] = json.dumps(history).encode()
        # Re-keyed by referrer, as received: the referrer's view needs its own partition.
        await self.referrer_view_topic.send(key=decision.referrer_id.encode(), value=event.value)
        return []

    async def _record_referrer_view(self, event: EventT[Any]) -> list[Emit]:
        """referrer-leads: a referrer's leads that are still open, with their status."""
        decision = self.codec.decode_record("referral-decisions", event.value)
        if not isinstance(decision, ReferralDecision):
            raise CodecError("not a referral decision")
        if decision.reason is RejectionReason.DUPLICATE_LEAD:
            return []  # someone else's duplicate submission is not one of this referrer's leads
        view = json.loads(self.referrer_leads.get(event.key) or b"{}")
        if decision.status in CLOSED_STATUSES:
            view.pop(decision.lead_id, None)
        else:
            view[decision.lead_id] = decision.status.value
        self.referrer_leads[event.key] = json.dumps(view, sort_keys=True).encode()
        return []

    # -- queries -------------------------------------------------------------------------

    def _build_views(self) -> None:
        app = self.app

        @app.page("/leads/{lead_id}")
        @app.table_route(table=self.lead_history, match_info="lead_id")
        async def lead_view(web: Any, request: Any, lead_id: str) -> Any:
            stored = self.lead_history.get(lead_id.encode())
            if stored is None:
                return web.json({"error": f"unknown lead {lead_id}"}, status=404)
            return web.json({"lead_id": lead_id, "decisions": json.loads(stored)})

        @app.page("/referrers/{referrer_id}")
        @app.table_route(table=self.referrer_table, match_info="referrer_id")
        async def referrer_view(web: Any, request: Any, referrer_id: str) -> Any:
            key = referrer_id.encode()
            state = StateTable(self.referrer_table, ReferrerState).get(referrer_id)
            open_leads = json.loads(self.referrer_leads.get(key) or b"null")
            if state is None and open_leads is None:
                return web.json({"error": f"unknown referrer {referrer_id}"}, status=404)
            state = state or ReferrerState(referrer_id=referrer_id)
            terms = self.programme.version_at(now_ms()) or self.programme.versions[-1]
            return web.json(
                {
                    "referrer_id": referrer_id,
                    "rewards_granted": state.granted_count,
                    "rewards_cents": state.granted_cents,
                    "caps": {
                        "terms_version": terms.version,
                        "max_rewards": terms.max_rewards,
                        "max_total_cents": terms.max_total_cents,
                        "rewards_left": max(0, terms.max_rewards - state.granted_count),
                        "cents_left": max(0, terms.max_total_cents - state.granted_cents),
                    },
                    "open_leads": [
                        {"lead_id": lead_id, "status": status}
                        for lead_id, status in sorted((open_leads or {}).items())
                    ],
                }
            )

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            return web.json({"status": "ok", "app": self.settings.app_id})

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.text(self.metrics.render(), content_type="text/plain; version=0.0.4")

    # -- the clock -----------------------------------------------------------------------

    def _build_clock(self) -> None:
        if self.settings.clock is not ClockMode.WALL:
            return

        @self.app.on_before_shutdown.connect
        async def close_lag_clients(*_: Any, **__: Any) -> None:
            if self._lag_clients is not None:
                admin, consumer = self._lag_clients
                self._lag_clients = None
                await consumer.stop()
                await admin.close()

        @self.app.timer(interval=self.settings.tick_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
        async def tick() -> None:
            """While the group is caught up on its inputs, write the wall clock into every
            lead shard's journal: holds expire even when no event arrives, and a backlog is
            still judged in business time because no tick is written while it drains."""
            lag = await self._pipeline_lag()
            if lag is None or lag > 0:
                return
            await self._publish([Send(Route.LEAD, "", ClockTick(now_ms()))])
            self.metrics.ticks += 1

    async def _pipeline_lag(self) -> int | None:
        """Records on the inputs and journals not yet committed by the group; None if unknown.

        Journals count too: an invoice reaches its lead through the account journal, and a
        clock record written while it is on its way would overtake it.
        """
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        names = [*self.settings.topics.inputs, *(self._journal_name(r) for r in Route)]
        if self._lag_clients is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap)
            await admin.start()
            await consumer.start()
            self._lag_clients = (admin, consumer)
        admin, consumer = self._lag_clients
        try:
            tps = [TopicPartition(n, p) for n in names for p in range(self.partitions)]
            committed = await admin.list_consumer_group_offsets(self.settings.app_id)
            ends = await consumer.end_offsets(tps)
        except Exception as exc:
            log.debug("lag check failed: %s", exc)
            return None
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, ends[tp] - done)
        return lag

    def _lag_samples(self) -> Iterable[tuple[str, dict[str, str], float]]:
        """Per assigned partition: high watermark minus the next offset to read."""
        consumer = self.app.consumer
        for tp in sorted(consumer.assignment()):
            highwater = consumer.highwater(tp)
            read = getattr(consumer, "_read_offset", {}).get(tp)  # faust keeps no public accessor
            if highwater is None:
                continue
            position = (read + 1) if read is not None else 0
            labels = {"topic": tp.topic, "partition": str(tp.partition)}
            yield "referral_consumer_lag", labels, max(0, highwater - position)
