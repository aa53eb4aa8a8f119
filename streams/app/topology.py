"""The live topology: Faust agents and tables around the pure rules core (one wiring point).

    other inputs (Avro) --ingest--> lead journal --leads--> decisions, account/referee/referrer
    invoice-paid (Avro) + account journal --account--> lead journal
                               referee journal --referees--> lead journal
                               referrer journal --referrers--> reward-granted, decisions, lead

Invoices are the account step's own input: billing keys them by account, so an invoice sits
on the partition of its account's journal and table, and the account agent applies it there
without a journal hop on a reward's way. An invoice found on another partition (an upstream
keyed otherwise) goes through the account journal as every other input goes through ingest,
so each account still has one writer. What the account step forwards does not depend on how
its two logs interleave (the first lead that opened the account, the first invoice paid on
it), which is why the invoice topic and the account journal together replay it exactly.

Read models: the leads agent keeps each lead's decisions (lead-history, in the lead's own
partition; the referrer's decision reaches it inside GrantSettled), and each decision about a
referrer's lead is also sent, keyed by referrer and as its lead and status alone, to the
referrer-view topic, whose agent keeps each referrer's open leads. The worker reads no output
topic back. What one step sends another travels packed (streams.app.packing).

Every step's state has exactly one writer: the agent that owns the journal partition its key
hashes to. Journals record, per partition, each message in the order it was applied, clock
records included, so replaying them (and the invoices, for the account step) reproduces
every output. Every agent works in batches (streams.app.staging): the batch's outputs are
acknowledged by the broker before its state is written, and its state before its offsets
are acked, so a worker killed at any moment loses nothing; what it redoes gives the same
records again (ids derived from the lead, steps deduping by state).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

import faust
from faust.types import TP, EventT, StreamT

from streams.app.batches import ack, take_batches
from streams.app.continuity import Continuity, install_continuity
from streams.app.delivery import Acks, Outgoing, acknowledged, partition_of, send
from streams.app.eager import install_eager_delivery
from streams.app.fault_points import FaultPoints
from streams.app.inline_consumer import install_inline_consumer
from streams.app.journal import (
    JournalError,
    app_topic,
    decode_message,
    encode_message,
    journal_topic,
)
from streams.app.metrics import Metrics
from streams.app.packing import PackError, messages_in, pack, unpack
from streams.app.pipeline import behind, pipeline_partitions
from streams.app.read_models import (
    history_with,
    in_referrer_view,
    view_message,
    view_update,
    view_with,
)
from streams.app.settings import ClockMode, Settings
from streams.app.staging import (
    FaustTableStore,
    InFlight,
    StagedTable,
    as_current,
    commit_in_order,
)
from streams.contracts import (
    AvroCodec,
    ClockAdvanced,
    CodecError,
    InputEvent,
    InvoicePaid,
    JsonlCodec,
    ReferralDecision,
    RewardGranted,
    dead_letter,
)
from streams.kafka import connection
from streams.kafka.connection import client_kwargs
from streams.kafka.fetch_sessions import install_fetch_sessions
from streams.kafka.topics import TopicSpec
from streams.rules import Programme, account_step, referee_step, referrer_step, route_of
from streams.rules.model import (
    AccountState,
    ClockTick,
    Emit,
    GrantSettled,
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
# An agent's step for one message: the record it came in (its Faust event), its key, its value.
Handler = Callable[[EventT[Any], bytes | None, bytes | None], list["Outgoing"]]
STALL_CHECK_S = 10.0  # how often partitions with records left but no progress are sought back
# Offsets of stored rounds are committed once no round has been stored for this long, besides
# Faust's commit every `commit_interval_s`: a backlog's or a burst's last offsets then wait
# a tenth of a second, not up to the interval (the last half second of a 100k drain with a
# 1 s interval), and a worker restarted after a quiet spell takes nothing again.
QUIET_COMMIT_S = 0.1
FETCH_CHECK_S = 1.0  # how often the watchdog looks whether Faust's fetch loop still runs
# The cyclic collector's young generation is collected once 20,000 more container objects
# exist than were freed (Python's default: 700). A round holds thousands of records, events
# and states in flight, and at 700 the collector ran ~2,300 times a 100k drain, its older
# generations ~240 times, re-walking what the rounds in flight hold: 2.2-2.4 s of the main
# thread (gc callbacks), against 0.1-0.2 s here. Reference counting frees nearly all of it;
# the older generations keep the default ratios, so cycles are still collected.
COLLECTOR_THRESHOLDS = (20_000, 10, 10)

# Per RocksDB database (one per table and partition: 7 x 8 here). Faust's defaults (64 MiB
# memtables, three of them, and a 2 GiB block cache, each per database) left a worker that
# had restored a million leads at 1.2 GB resident; 8 MiB memtables at 491-515 MB, 4 MiB at
# 458 (a restore leaves every database's memtable partly filled: 56 of them).
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 << 20,
}
# A round's records for one partition go in one batch, not 16 KiB ones (Faust's default):
# aiokafka sends a partition's next batch only once the one before is acknowledged, so the
# leads agent's changelog took several round trips a round (38 ms, 10 ms at 512 KiB). Below
# the broker's default message.max.bytes (1 MiB).
PRODUCER_BATCH_BYTES = 512 << 10
EXIT_UNDELIVERED = 75  # EX_TEMPFAIL: a supervisor restarts the worker, and the batch comes again


def now_ms() -> int:
    """Wall-clock time: for clock records and operational metrics only, never in a decision."""
    return int(time.time() * 1000)


def _present(value: bytes | None) -> bytes:
    """A message's bytes; a record without (a tombstone) carries no message."""
    if value is None:
        raise CodecError("a record without a value (a tombstone) carries no message")
    return value


def state_table(table: Any, cls: type[S]) -> StagedTable[S]:
    """A Faust table of encoded states, seen as staged str -> state."""
    return StagedTable(FaustTableStore(table), partial(decode_state, cls), encode_state)


def raw_table(table: Any) -> StagedTable[bytes]:
    """A Faust table of bytes values (clocks, read models), seen as staged str -> bytes."""
    return StagedTable(FaustTableStore(table), bytes, bytes)


def topics_declared_unless_checked(checked: set[str]) -> type[faust.Topic]:
    """Faust's topic class, except that a topic named in `checked` is not declared again.

    Faust declares each topic at start, one CreateTopics request to the controller apiece; a
    broker that went away during them stopped the worker, and so would a cluster that does not
    let the worker create topics. The runner creates and checks every topic the worker needs
    (`ensure_topics`, co-partitioning included) before Faust starts, and fills `checked`
    then. The producer's metadata still learns the topics, all of them at the first
    declaration (as Faust's first refresh did): the table queries' routing finds a key's
    partition there. Tracked, not refreshed once, so that a later refresh for the topics
    written does not drop them."""

    tracked: set[str] = set()  # in the producer's metadata already

    class CheckedTopic(faust.Topic):
        async def declare(self) -> None:
            if not checked.issuperset(self.topics):
                await super().declare()
                return
            producer: Any = await self._get_producer()
            client = producer._ensure_producer().client  # Faust's own create_topic uses it
            for topic in checked - tracked:
                await client.add_topic(topic)  # one refresh for all: they wait on the same
            tracked.update(checked)

    return CheckedTopic


class ReferralWorker:
    """Builds the Faust app for `settings`; `app` is what a Faust worker runs."""

    def __init__(self, settings: Settings, programme: Programme) -> None:
        self.settings = settings
        self.programme = programme
        self.codec = AvroCodec()
        self.jsonl = JsonlCodec()  # formatters are compiled once per topic and instance
        self.metrics = Metrics()
        self.faults = FaultPoints.from_env()
        self.partitions = settings.partitions
        self.checked_topics: set[str] = set()  # the runner's `ensure_topics` created and checked
        self.app = faust.App(
            settings.app_id,
            Topic=topics_declared_unless_checked(self.checked_topics),
            broker=f"kafka://{settings.bootstrap}",
            broker_credentials=connection.current().faust_credentials(),
            store="rocksdb://",
            datadir=str(settings.state_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication,
            # Crash consistency comes from the batch rounds (streams.app.staging), not from
            # Faust's transactions, which pick a producer by destination partition.
            processing_guarantee="at_least_once",
            web_enabled=True,
            web_port=settings.web_port,
            web_bind=settings.web_bind or settings.web_host,
            web_host=settings.web_host,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            table_standby_replicas=0,
            broker_commit_interval=settings.commit_interval_s,
            # A killed worker's partitions move after this long, not Faust's 60 s.
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
        )
        self.faults.flush = self._flush_producer
        self.faults.end_fetch = self._end_fetch
        self._shards: dict[int, LeadShard] = {}
        self.continuity = Continuity(
            self._start_offsets, self._gap_is_empty, lambda: self.app.consumer, self._seek
        )
        self._reading = asyncio.Lock()  # our consumer reads one partition range at a time
        self._rounds_seen: dict[str, int] = {}  # rounds per agent at the last stall check
        self._stored_at: float | None = None  # the last round stored since the last commit
        install_continuity()  # every agent goes through the continuity guard
        install_eager_delivery()
        install_inline_consumer()  # no thread of its own: one event loop, no lock hand-overs
        install_fetch_sessions()  # a fetch names the partitions that moved, not all of them
        self._kafka_clients: tuple[Any, Any] | None = None
        # Every agent's first round asks for committed offsets at once: one pair of clients
        # for all of them (each made its own, and all but one were left unclosed)
        self._starting_clients = asyncio.Lock()
        self._build_topics()
        self._build_tables()
        self._build_agents()
        self._build_views()
        self._build_clock()
        self.metrics.add_gauges(self._lag_samples)

    # -- topics and tables ---------------------------------------------------------------

    def _build_topics(self) -> None:
        app, names, p = self.app, self.settings.topics, self.partitions
        # Names resolved once: the output step and ingest look them up per record.
        self.contract_of = names.inputs  # Kafka topic -> contract
        self.rewards_name, self.decisions_name = names.reward_granted, names.decisions
        self.dead_letters_name = names.dead_letters
        self.invoices_name = names.invoice_paid
        ingested = [name for name in self.contract_of if name != self.invoices_name]
        self.input_topic = app.topic(*ingested, partitions=p, **RAW)
        self.journal_names = {route: journal_topic(self.settings.app_id, route) for route in Route}
        self.journals: dict[Route, Any] = {
            route: app.topic(name, partitions=p, internal=True, **RAW)
            for route, name in self.journal_names.items()
            if route is not Route.ACCOUNT
        }
        # The account agent's two logs, co-partitioned (streams.kafka.topics refuses otherwise)
        self.account_topic = app.topic(
            self.journal_names[Route.ACCOUNT], self.invoices_name, partitions=p, **RAW
        )
        self.referrer_view_name = app_topic(self.settings.app_id, "referrer-view")
        self.referrer_view_topic = app.topic(
            self.referrer_view_name, partitions=p, internal=True, **RAW
        )
        # What one step sends another goes packed (streams.app.packing): never an input, an
        # output contract, a dead letter or a changelog.
        self.packed_topics = frozenset([*self.journal_names.values(), self.referrer_view_name])

    def _table(self, name: str) -> Any:
        # bytes key and value types make Faust use the raw serializer for the changelog
        return self.app.Table(
            name,
            default=None,
            partitions=self.partitions,
            key_type=bytes,
            value_type=bytes,
            options=ROCKSDB_OPTIONS,
        )

    def _build_tables(self) -> None:
        self.lead_table = self._table("leads")
        self.clock_table = self._table("lead-clocks")
        self.account_table = self._table("accounts")
        self.referee_table = self._table("referees")
        self.referrer_table = self._table("referrers")
        self.lead_history = self._table("lead-history")
        self.referrer_leads = self._table("referrer-leads")
        # What the agents read and write: staged until their batch's outputs are acknowledged.
        self.leads = state_table(self.lead_table, LeadState)
        self.clocks = raw_table(self.clock_table)
        self.referrers = state_table(self.referrer_table, ReferrerState)
        self.histories = raw_table(self.lead_history)
        self.open_leads = raw_table(self.referrer_leads)

    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the worker needs, with the partition count co-partitioning requires."""
        p, r = self.partitions, self.settings.replication
        names = [
            *self.settings.topics.inputs,
            self.settings.topics.reward_granted,
            self.settings.topics.decisions,
            self.settings.topics.dead_letters,
            *self.journal_names.values(),
            self.referrer_view_name,
        ]
        specs = [TopicSpec(name, p, r) for name in names]
        # Faust elects the leader (who writes clock records) by who owns this topic's only
        # partition; created late by Faust, it can miss the first assignment.
        specs.append(TopicSpec(app_topic(self.settings.app_id, "__assignor-__leader"), 1, r))
        compacted = {"cleanup.policy": "compact"}
        for table in self.app.tables.values():
            specs.append(TopicSpec(table.changelog_topic.get_topic_name(), p, r, compacted))
        return specs

    # -- the one output step -------------------------------------------------------------

    def _outgoing(self, emits: Iterable[Emit]) -> list[Outgoing]:
        """The records the rules' results become: the one place they turn into Kafka records."""
        out: list[Outgoing] = []
        lead_journal = self.journal_names[Route.LEAD]
        for emit in emits:
            if isinstance(emit, Send):
                value = encode_message(emit.message)
                if isinstance(emit.message, ClockTick):
                    # A clock record moves every lead shard: one copy per partition.
                    out.extend(
                        Outgoing(lead_journal, None, value, partition)
                        for partition in range(self.partitions)
                    )
                else:
                    out.append(Outgoing(self.journal_names[emit.route], emit.key.encode(), value))
            elif isinstance(emit, RewardGranted):
                value = self.codec.encode_record(emit)
                out.append(Outgoing(self.rewards_name, emit.referrer_id.encode(), value))
                self.metrics.rewards_granted += 1
                if now_ms() > emit.due_by:
                    self.metrics.overdue_grants += 1
            else:
                value = self.codec.encode_record(emit)
                out.append(Outgoing(self.decisions_name, emit.lead_id.encode(), value))
                self.metrics.decisions[emit.status.value] += 1
                if in_referrer_view(emit):
                    referrer = emit.referrer_id.encode()
                    out.append(Outgoing(self.referrer_view_name, referrer, view_message(emit)))
        return out

    def _packed(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """A round's records as they go: what one step sends another packed by partition."""
        return pack(outgoing, self.packed_topics, self.partitions)

    async def _flush_producer(self) -> None:
        await self.app.producer.flush()

    def _end_fetch(self) -> None:
        """Cancel Faust's fetch loop (the `fetch` fault point)."""
        fetcher: Any = self.app._fetcher
        for task in list(fetcher._futures):
            task.cancel()

    async def _keep_fetching(self) -> None:
        """Start Faust's fetch loop again if it ended while the worker runs.

        faust-streaming's loop ends for good when its task is cancelled outside a rebalance:
        it takes that for a stop, and the worker then sits idle with records waiting (a
        two-worker drain, its backlog published while the group formed, stalled so for good;
        faust-streaming #175, #532). Started again the way Faust restarts it after a
        rebalance; records the old loop held but never handed over come again through the
        continuity guard, which seeks back to them.
        """
        app: Any = self.app
        fetcher = app._fetcher
        # ended on its own: not stopped, and not crashed (a crash is Faust's supervisor's)
        ended = fetcher._shutdown.is_set() and not (
            fetcher._stopped.is_set() or fetcher._crashed.is_set()
        )
        if not ended or app.should_stop or app.rebalancing:
            return
        log.warning("Faust's fetch loop has ended while the worker runs: starting it again")
        self.metrics.fetch_restarts += 1
        await fetcher.stop()
        fetcher.service_reset()
        await fetcher.maybe_start()

    async def _deliver(self, outgoing: list[Outgoing]) -> dict[tuple[str, int], int]:
        """Send records and wait until the broker has acknowledged every one (`_send`, then
        `_acknowledged`)."""
        return await self._acknowledged(await self._send(outgoing))

    async def _send(self, outgoing: list[Outgoing]) -> Acks:
        """Hand records to the producer, in order per partition, without waiting for the
        broker."""
        if not outgoing:
            return []
        try:
            producer: Any = self.app.producer  # Faust's, around the aiokafka producer
            return await send(producer._ensure_producer(), outgoing, self.partitions)
        except Exception:
            log.critical("could not send a round's records: stopping", exc_info=True)
            os._exit(EXIT_UNDELIVERED)

    async def _acknowledged(self, acks: Acks) -> dict[tuple[str, int], int]:
        """Wait for the broker's acknowledgement of records sent; the last offset written per
        (topic, partition).

        The producer retries on its own (a broker that is away for a while delays this, and
        the round with it). A record it gives up on stops the worker at once, before the
        round's state is written or its offsets acked: the round comes again after the
        restart.
        """
        try:
            return await acknowledged(acks)
        except Exception:
            log.critical("could not deliver a round's records: stopping", exc_info=True)
            os._exit(EXIT_UNDELIVERED)

    async def _committing(self, rounds: Awaitable[None]) -> None:
        """An agent's commits; one that fails stops the worker at once, as a failed delivery
        does (its rounds were not stored: they come again after the restart)."""
        try:
            await rounds
        except asyncio.CancelledError:
            raise
        except Exception:
            log.critical("could not store a round: stopping", exc_info=True)
            os._exit(EXIT_UNDELIVERED)

    def _dead_letter(
        self, event: EventT[Any], key: bytes | None, value: bytes | None, error: BaseException
    ) -> Outgoing:
        """The dead letter of one message (a record's, or one of a packed record's: the
        message's own key and bytes, the origin its record's)."""
        message = event.message
        record = dead_letter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            value=value,
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
        encoded = self.codec.encode_record(record)
        # keyless records stay on their origin's partition number
        partition = None if key else message.partition % self.partitions
        return Outgoing(self.dead_letters_name, key, encoded, partition)

    def _agent(
        self,
        topic: Any,
        name: str,
        handle: Handler,
        tables: Sequence[StagedTable[Any]] = (),
        *,
        on_failure: Callable[[EventT[Any]], None] | None = None,
        before_round: Callable[[list[EventT[Any]]], Awaitable[None]] | None = None,
    ) -> None:
        """An agent (concurrency 1, faust-streaming #606) applying `handle` to every message
        of batches of records taken from its channel (streams.app.batches; a packed record
        holds many, streams.app.packing) in rounds (streams.app.staging), each round after
        `before_round` (what the round's records need ready, awaited).
        It computes the next round while the broker acknowledges the last ones (at most
        `rounds_in_flight` unstored); a task beside it commits them in order: outputs
        acknowledged first, then state, then offsets.

        Whatever `handle` raises sends the event to the dead letters with none of its writes,
        never stops the worker.
        """
        batch_size, within = self.settings.batch_size, self.settings.batch_wait_s
        in_flight = self.settings.rounds_in_flight
        weight = self._messages_held
        spent, clock = self.metrics.round_seconds, time.perf_counter

        async def outputs_acked(outputs: Acks) -> dict[tuple[str, int], int]:
            begun = clock()
            written = await self._acknowledged(outputs)
            spent[name, "acked"] += clock() - begun
            await self.faults.reached(name, "delivered")
            return written

        async def changelog_acked(records: list[Outgoing]) -> dict[tuple[str, int], int]:
            begun = clock()
            written = await self._deliver(records)
            spent[name, "store"] += clock() - begun
            return written

        async def stored(round_: InFlight) -> None:
            await self.faults.reached(name, "stored")
            ack(round_.events, self.app.consumer)
            self._stored_at = clock()

        async def agent(stream: StreamT[Any]) -> AsyncIterator[None]:
            for table in tables:  # an agent restarted in place: what it staged is gone
                table.discard()
            rounds: asyncio.Queue[InFlight | None] = asyncio.Queue(maxsize=in_flight)
            committing = commit_in_order(rounds, tables, outputs_acked, changelog_acked, stored)
            committer = asyncio.ensure_future(self._committing(committing))
            started = clock()
            try:
                async for batch in take_batches(stream, batch_size, within, weight):
                    outgoing: list[Outgoing] = []
                    taken = clock()
                    self._count_round(name, batch, weight)
                    spent[name, "wait"] += taken - started
                    events = self.faults.ahead(name, batch, self.app.consumer)
                    admitted = await self.continuity.admit(events)
                    if before_round is not None:
                        await before_round(admitted)
                    for event in admitted:
                        outgoing.extend(self._apply(event, handle, tables, on_failure))
                    for table in tables:
                        table.seal()
                    computed = clock()
                    spent[name, "rules"] += computed - taken
                    await self.faults.reached(name, "computed")
                    # Handed to the producer now, so this round's records precede the next
                    # round's on every partition; waits while `in_flight` rounds are unstored.
                    await rounds.put(InFlight(events, await self._send(self._packed(outgoing))))
                    started = clock()
                    spent[name, "send"] += started - computed
                    yield None
            except BaseException:  # cancelled: the rounds not stored come again on restart
                committer.cancel()
                for table in tables:
                    table.discard()
                raise
            await rounds.put(None)  # stopping: the rounds in flight commit first
            await committer

        self.app.agent(topic, name=name, concurrency=1)(agent)

    def _messages_held(self, event: EventT[Any]) -> int:
        """What a record weighs in a round: the messages it holds (an input holds one)."""
        message = event.message
        return messages_in(message.value) if message.topic in self.packed_topics else 1

    def _count_round(
        self, agent: str, events: list[EventT[Any]], weight: Callable[[EventT[Any]], int]
    ) -> None:
        """A round taken: its records, the messages they hold, and how old they were."""
        metrics, now = self.metrics, time.time()
        metrics.rounds[agent] += 1
        metrics.round_records[agent] += len(events)
        metrics.round_messages[agent] += sum(map(weight, events))
        # Kafka's timestamps: create time, set by the producer (ours for every internal topic)
        metrics.taken(agent, (now - (event.message.timestamp or now) for event in events))

    def _apply(
        self,
        event: EventT[Any],
        handle: Handler,
        tables: Sequence[StagedTable[Any]],
        on_failure: Callable[[EventT[Any]], None] | None,
    ) -> list[Outgoing]:
        """Every message of one record through `handle`, under the record's Faust context:
        a message's outputs, its writes kept in the round; or, whatever it raised, its dead
        letter and none of its writes."""
        message = event.message
        try:
            entries = (
                unpack(message.key, message.value)
                if message.topic in self.packed_topics
                else [(message.key, message.value)]  # an input: one event, whatever its bytes
            )
        except PackError as exc:  # the whole record, as it came
            return [self._dead_letter(event, message.key, message.value, exc)]
        outgoing: list[Outgoing] = []
        with as_current(event):
            for key, value in entries:
                try:
                    outgoing.extend(handle(event, key, value))
                except Exception as exc:
                    for table in tables:
                        table.drop()
                    if on_failure is not None:
                        on_failure(event)
                    if not isinstance(exc, CodecError):
                        log.exception("processing %s failed", message.topic)
                    outgoing.append(self._dead_letter(event, key, value, exc))
                    continue
                for table in tables:
                    table.keep(event)
        return outgoing

    # -- agents --------------------------------------------------------------------------

    def _build_agents(self) -> None:
        self._agent(self.input_topic, "ingest", self._ingest)
        self._agent(
            self.journals[Route.LEAD],
            "leads",
            self._lead,
            (self.leads, self.clocks, self.histories),
            on_failure=self._forget_shard,
            before_round=self._open_shards,
        )
        accounts = state_table(self.account_table, AccountState)
        self._agent(self.account_topic, Route.ACCOUNT.value, self._accounts(accounts), (accounts,))
        keyed: list[tuple[Route, StagedTable[Any], Callable[[Any, Any], Any]]] = [
            (Route.REFEREE, state_table(self.referee_table, RefereeState), referee_step),
            (Route.REFERRER, self.referrers, referrer_step),
        ]
        for route, states, step in keyed:
            self._agent(self.journals[route], route.value, self._keyed(states, step), (states,))
        self._agent(
            self.referrer_view_topic,
            "referrer-view",
            self._record_referrer_view,
            (self.open_leads,),
        )

        @self.app.on_partitions_revoked.connect
        async def forget_shards(*_: Any, **__: Any) -> None:
            # rebuilt from the tables for the partitions that come next
            self._shards.clear()
            self.continuity.forget()

        @self.app.on_partitions_assigned.connect
        async def reread_assignment(*_: Any, **__: Any) -> None:
            self.continuity.reassigned()

        @self.app.on_partitions_assigned.connect
        async def freeze_heap(*_: Any, **__: Any) -> None:
            # What exists by now (modules, Faust's services, the clients) lives as long as the
            # worker: out of the cyclic collector's full passes, which otherwise stop every
            # agent for tens of milliseconds every few seconds (a reward's latency tail).
            gc.collect()
            gc.freeze()
            gc.set_threshold(*COLLECTOR_THRESHOLDS)

    def _input(self, event: EventT[Any], value: bytes | None) -> InputEvent | ClockAdvanced:
        """The input event (or clock record) a record of an input topic holds."""
        message = event.message
        contract = self.contract_of[message.topic]
        kafka_ms = int(message.timestamp * 1000) if message.timestamp else None
        record = self.codec.decode_record(contract, _present(value), kafka_timestamp_ms=kafka_ms)
        self.metrics.events[contract] += 1
        if not isinstance(record, InputEvent | ClockAdvanced):
            raise CodecError(f"{type(record).__name__} is not an input event")
        return record

    def _ingest(self, event: EventT[Any], key: bytes | None, value: bytes | None) -> list[Outgoing]:
        record = self._input(event, value)
        if isinstance(record, ClockAdvanced):
            return self._outgoing([Send(Route.LEAD, "", ClockTick(record.at))])
        send = route_of(record)
        return [] if send is None else self._outgoing([send])

    def _accounts(self, states: StagedTable[AccountState]) -> Handler:
        """The account step over its journal and over billing's invoices (module docstring)."""
        journal = self._keyed(states, account_step)

        def handle(event: EventT[Any], key: bytes | None, value: bytes | None) -> list[Outgoing]:
            message = event.message
            if message.topic != self.invoices_name:
                return journal(event, key, value)
            invoice = self._input(event, value)
            if not isinstance(invoice, InvoicePaid):  # to the dead letters, never dropped
                raise CodecError(f"{type(invoice).__name__} on the invoice topic")
            send = route_of(invoice)
            if send is None:
                return []  # a later invoice (R6)
            if partition_of(send.key.encode(), self.partitions) != message.partition:
                # keyed otherwise upstream: sent to the account's own partition, its one writer
                return self._outgoing([send])
            return self._step(states, account_step, send.key, invoice)

        return handle

    def _shard(self, partition: int) -> LeadShard:
        """The lead shard of `partition`, its clock and timers rebuilt from the tables the
        first time after a start or a rebalance (a scan of the partition's leads)."""
        shard = self._shards.get(partition)
        if shard is None:
            stored = self.clocks.get(str(partition))
            shard = LeadShard(self.programme, self.leads, int(stored) if stored else None)
            leads = self.leads.items_in(partition, self._lead_partition)
            count = shard.rebuild_timers(pending_timers(leads, self.programme))
            log.info("lead shard %d: clock %s, %d timers", partition, shard.clock, count)
            self._shards[partition] = shard
        return shard

    def _lead_partition(self, lead_id: str) -> int:
        return partition_of(lead_id.encode(), self.partitions)

    async def _open_shards(self, events: list[EventT[Any]]) -> None:
        """The lead shards a round needs, rebuilt before it runs, one partition at a time
        with the loop free in between: the group's heartbeat runs on this loop
        (streams.app.inline_consumer), and a scan takes most of a second for every 100,000
        leads of its partition (6.6 us a lead on RocksDB alone)."""
        first = {event.message.partition: event for event in reversed(events)}
        for partition, event in sorted(first.items()):
            if partition not in self._shards:
                with as_current(event):  # the tables read as in the round: by its partition
                    self._shard(partition)
                await asyncio.sleep(0)

    def _forget_shard(self, event: EventT[Any]) -> None:
        """A lead message failed half-way: its shard's clock and timers are rebuilt from the
        tables, which hold none of its writes."""
        self._shards.pop(event.message.partition, None)

    def _lead(self, event: EventT[Any], key: bytes | None, value: bytes | None) -> list[Outgoing]:
        partition = event.message.partition
        message = decode_message(_present(value))
        if not isinstance(message, ShardMessage):
            raise JournalError(f"{type(message).__name__} does not belong in the lead journal")
        shard = self._shard(partition)
        before = shard.clock
        emits = shard.handle(message)
        if shard.clock != before:
            self.clocks[str(partition)] = str(shard.clock).encode()
        for emit in emits:
            if isinstance(emit, ReferralDecision):  # a decision about one of this shard's leads
                self._record_decision(emit)
        if isinstance(message, GrantSettled) and message.decision is not None:
            self._record_decision(message.decision)
        return self._outgoing(emits)

    def _keyed(self, states: StagedTable[Any], step: Callable[[Any, Any], Any]) -> Handler:
        """A keyed step over its journal: each message applied to the state of its key."""

        def handle(event: EventT[Any], key: bytes | None, value: bytes | None) -> list[Outgoing]:
            if not isinstance(key, bytes):
                raise JournalError("a journal message without a key")
            return self._step(states, step, key.decode(), decode_message(_present(value)))

        return handle

    def _step(
        self, states: StagedTable[S], step: Callable[[Any, Any], Any], key: str, message: Any
    ) -> list[Outgoing]:
        """`message` applied to the state of `key`: the state staged if it changed, the
        outputs as records."""
        before = states.get(key)
        after, emits = step(before, message)
        if after != before:
            states[key] = after
        return self._outgoing(emits)

    # -- read models for the queries (streams.app.read_models) ---------------------------

    def _record_decision(self, decision: ReferralDecision) -> None:
        """lead-history: each lead's decisions in order (written by the leads agent, which
        owns the lead's partition)."""
        key = decision.lead_id
        history = history_with(self.histories.get(key), self.jsonl.value(decision))
        if history is not None:
            self.histories[key] = history

    def _record_referrer_view(
        self, event: EventT[Any], key: bytes | None, value: bytes | None
    ) -> list[Outgoing]:
        """referrer-leads: a referrer's leads that are still open, with their status."""
        update = view_update(key, _present(value), self.codec)
        if update is not None:
            referrer, lead_id, status = update
            self.open_leads[referrer] = view_with(self.open_leads.get(referrer), lead_id, status)
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
            # The tables as committed: what is staged may still be recomputed after a crash.
            key = referrer_id.encode()
            stored = self.referrer_table.get(key)
            state = None if stored is None else decode_state(ReferrerState, stored)
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
        @self.app.timer(interval=STALL_CHECK_S)  # type: ignore[untyped-decorator]
        async def check_stalls() -> None:
            """A partition whose last record was skipped shows nothing to the agents. Only the
            partitions of agents that ran no round since the last check count: a busy agent's
            partitions may just be waiting their turn behind others."""
            rounds = dict(self.metrics.rounds)
            agents = list(self.app.agents.values())
            topics = {topic for agent in agents for topic in agent.channel.topics}
            idle = {
                topic
                for agent in agents
                if rounds.get(agent.name, 0) == self._rounds_seen.get(agent.name, 0)
                for topic in agent.channel.topics
            }
            self._rounds_seen = rounds
            try:
                await self.continuity.check_stalls(topics, idle, self._end_offsets)
            except Exception as exc:  # the broker may be away: the next check tries again
                log.debug("stall check failed: %s", exc)

        @self.app.timer(interval=FETCH_CHECK_S)  # type: ignore[untyped-decorator]
        async def keep_fetching() -> None:
            await self._keep_fetching()

        @self.app.timer(interval=QUIET_COMMIT_S)  # type: ignore[untyped-decorator]
        async def commit_when_quiet() -> None:
            """Commit the offsets of the rounds stored since the last commit once no round has
            been stored for QUIET_COMMIT_S (a busy worker keeps Faust's commit interval)."""
            stored = self._stored_at
            if stored is None or time.perf_counter() - stored < QUIET_COMMIT_S:
                return
            consumer: Any = self.app.consumer
            if self.app.rebalancing or consumer._commit_fut is not None:
                return  # a commit under way may have taken its offsets before the last round's
            self._stored_at = None
            await consumer.commit()

        @self.app.on_before_shutdown.connect
        async def close_clients(*_: Any, **__: Any) -> None:
            if self._kafka_clients is not None:
                admin, consumer = self._kafka_clients
                self._kafka_clients = None
                await consumer.stop()
                await admin.close()

        if self.settings.clock is not ClockMode.WALL:
            return

        @self.app.timer(interval=self.settings.tick_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
        async def tick() -> None:
            """While the group is caught up on its inputs, write the wall clock into every
            lead shard's journal: holds expire even when no event arrives, and a backlog is
            still judged in business time because no tick is written while it drains."""
            lag = await self._pipeline_lag()
            if lag is None or lag > 0:
                return
            tick = self._outgoing([Send(Route.LEAD, "", ClockTick(now_ms()))])
            await self._deliver(self._packed(tick))
            self.metrics.ticks += 1

    async def _pipeline_lag(self) -> int | None:
        """Records on the inputs and journals not yet committed by the group; None if unknown.

        Journals count too: a submission reaches its lead through the lead journal, and a
        clock record written while it is on its way would overtake it.
        """
        app_id = self.settings.app_id
        tps = pipeline_partitions(self.settings.topics, app_id, self.partitions)
        try:
            admin, consumer = await self._clients()
            return sum((await behind(admin, consumer, app_id, tps)).values())
        except Exception as exc:
            log.debug("lag check failed: %s", exc)
            return None

    async def _clients(self) -> tuple[Any, Any]:
        """An admin client and a group-less consumer of our own, for offsets and lag."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        async with self._starting_clients:
            if self._kafka_clients is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.settings.bootstrap, **client_kwargs()
                )
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.settings.bootstrap, **client_kwargs()
                )
                await admin.start()
                await consumer.start()
                self._kafka_clients = (admin, consumer)
            return self._kafka_clients

    async def _start_offsets(self, tps: set[TP]) -> dict[TP, int]:
        """Where the group resumes each partition: its committed offset, else the log start
        (the consumer's reset policy is earliest)."""
        from aiokafka import TopicPartition

        admin, consumer = await self._clients()
        wanted = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
        committed = await admin.list_consumer_group_offsets(
            self.settings.app_id, partitions=list(wanted)
        )
        starts: dict[TP, int] = {}
        missing = []
        for ak, tp in wanted.items():
            meta = committed.get(ak)
            if meta is not None and meta.offset >= 0:
                starts[tp] = meta.offset
            else:
                missing.append(ak)
        if missing:
            beginnings = await consumer.beginning_offsets(missing)
            starts.update({wanted[ak]: offset for ak, offset in beginnings.items()})
        return starts

    async def _seek(self, tp: TP, offset: int) -> None:
        """Seek through the consumer's service, as Faust's rebalance does. (While the
        consumer ran in a thread of its own, Faust's Consumer.seek called the client from
        this thread as it fetched in the other: aiokafka then failed on a KeyError in
        fetched_records, and the worker crashed.)"""
        consumer: Any = self.app.consumer  # the aiokafka driver's (streams.app.inline_consumer)
        await consumer._thread.seek_wait({tp: offset})

    async def _end_offsets(self, tps: set[TP]) -> dict[TP, int]:
        from aiokafka import TopicPartition

        _, consumer = await self._clients()
        wanted = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
        ends = await consumer.end_offsets(list(wanted))
        return {wanted[ak]: offset for ak, offset in ends.items()}

    async def _gap_is_empty(self, tp: TP, first: int, end: int) -> bool:
        """Whether the broker holds no record at offsets first..end-1 of `tp` (markers)."""
        from aiokafka import TopicPartition

        async with self._reading:
            _, reader = await self._clients()
            partition = TopicPartition(tp.topic, tp.partition)
            reader.assign([partition])
            reader.seek(partition, first)
            batch = await reader.getmany(partition, timeout_ms=3000, max_records=1)
            records = batch.get(partition, [])
            return bool(records) and records[0].offset >= end

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
