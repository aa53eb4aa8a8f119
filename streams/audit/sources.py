"""What audits read: the input topics (decoded, in a deterministic order) and the journals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from streams.app.journal import JOURNALS, decode_message
from streams.app.settings import Topics
from streams.contracts import AvroCodec, ClockAdvanced, CodecError, InputEvent
from streams.contracts.records import Record
from streams.kafka.reader import ReadProgress, read_topics
from streams.rules.model import Message, Route

# Among records with the same Kafka timestamp, a fixed topic order keeps the merge stable.
_TOPIC_RANK = {
    "lead-submitted": 0,
    "client-signed": 1,
    "invoice-paid": 2,
    "referral-refused": 3,
    "referral-clock": 4,
}


@dataclass
class InputLog:
    entries: list[InputEvent | ClockAdvanced] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # undecodable records, by topic


class LogBuilder:
    """Decodes input records as they come and orders them into the replay's log: by (Kafka
    timestamp, topic, partition, offset), so the same log always gives the same order.
    Records the live worker would have dead-lettered are skipped and counted."""

    def __init__(self, contract_of: Mapping[str, str]) -> None:
        self._codec = AvroCodec()
        self._contract_of = contract_of
        self._keyed: list[tuple[tuple[int, int, int, int], InputEvent | ClockAdvanced]] = []
        self.skipped: Counter[str] = Counter()

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int, value: bytes) -> None:
        contract = self._contract_of[topic]
        try:
            decoded = self._codec.decode_record(contract, value, kafka_timestamp_ms=timestamp_ms)
        except CodecError:
            self.skipped[contract] += 1
            return
        if isinstance(decoded, InputEvent | ClockAdvanced):
            position = (timestamp_ms, _TOPIC_RANK[contract], partition, offset)
            self._keyed.append((position, decoded))

    def log(self) -> InputLog:
        """The log so far, in order (positions are unique: entries are never compared)."""
        self._keyed.sort(key=itemgetter(0))
        return InputLog([entry for _, entry in self._keyed], Counter(self.skipped))


async def read_inputs(
    bootstrap: str,
    topics: Topics,
    *,
    since_ms: int | None = None,
    quiet: bool = False,
) -> InputLog:
    """The input topics merged into one log (see LogBuilder)."""
    contract_of = topics.inputs
    builder = LogBuilder(contract_of)
    with ReadProgress("reading inputs", quiet=quiet) as progress:
        async for record in read_topics(
            bootstrap, list(contract_of), since_ms=since_ms, progress=progress
        ):
            builder.add(
                record.topic,
                record.partition,
                record.offset,
                record.timestamp_ms,
                record.value or b"",
            )
    return builder.log()


@dataclass
class Journals:
    """Each journal's partitions, each a list of (offset, message) in offset order."""

    partitions: dict[Route, dict[int, list[tuple[int, Message]]]] = field(default_factory=dict)
    unreadable: int = 0

    @property
    def input_events(self) -> int:
        """How many input events (from the CRM and billing) the journals carry."""
        return sum(
            1
            for partitions in self.partitions.values()
            for messages in partitions.values()
            for _, message in messages
            if isinstance(message, InputEvent)
        )


async def read_journals(bootstrap: str, app_id: str, *, quiet: bool = False) -> Journals:
    names = {f"{app_id}-{name}": route for route, name in JOURNALS.items()}
    journals = Journals({route: {} for route in Route})
    with ReadProgress("reading journals", quiet=quiet) as progress:
        async for record in read_topics(bootstrap, list(names), progress=progress):
            try:
                message = decode_message(record.value or b"")
            except ValueError:
                journals.unreadable += 1
                continue
            route = names[record.topic]
            journals.partitions[route].setdefault(record.partition, []).append(
                (record.offset, message)
            )
    return journals


async def read_outputs(
    bootstrap: str, topics: Topics, *, quiet: bool = False
) -> dict[str, list[Record]]:
    """What is on reward-granted and referral-decisions, decoded, per topic."""
    codec = AvroCodec()
    names = {topics.reward_granted: "reward-granted", topics.decisions: "referral-decisions"}
    out: dict[str, list[Record]] = {name: [] for name in names.values()}
    with ReadProgress("reading outputs", quiet=quiet) as progress:
        async for record in read_topics(bootstrap, list(names), progress=progress):
            contract = names[record.topic]
            out[contract].append(codec.decode_record(contract, record.value or b""))
    return out
