"""Incremental fetch sessions (Kafka's KIP-227) for aiokafka's consumer.

aiokafka sends every fetch in full: the request names every partition the consumer reads,
with its offset, and the response lists every one of them, encoded and decoded in Python.
A worker reads about 80 partitions (five inputs and five journals of 8), and under a light
load a fetch returns as soon as one of them has a record: 0.6 ms of the worker's one loop
went to encoding and decoding 80 partitions to carry one record, a quarter of that loop at
200 events/s (docs/benchmarks.md, round 16).

In a session the broker keeps the partitions and their offsets between fetches. A request
names only the partitions that are new or whose offset or size moved, and those that left
(forgotten); the response names only the partitions with records, errors or new offsets.

The session's offsets are exactly the partitions aiokafka asked for in its last request:
a partition whose records are still buffered, paused, or resetting is not asked for, so it
is forgotten until aiokafka asks for it again, and the broker never sends a partition's
records from an offset the consumer did not ask for. Any doubt about what the broker holds
(an error in the response, a request that failed or was cancelled) starts a new session
with a full request, which closes the old one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.protocol.fetch import FetchRequest

T = TypeVar("T")
# A partition as a session holds it: (topic, partition) -> (fetch offset, max bytes)
Partitions = dict[tuple[str, int], tuple[int, int]]
FIRST_SESSION_VERSION = 7  # FetchRequest v7 brought sessions
INITIAL_EPOCH = 0  # a full request: opens a session (and closes the one named, if any)
NO_SESSION = 0
MAX_EPOCH = 2**31 - 1

# What this process's fetches were, for /metrics: requests by kind ("full": every partition
# named; "incremental": a session's changes), and sessions started again, by reason ("error":
# the broker did not know the session or its epoch; "unanswered": a request failed or was
# cancelled; "refused": the broker keeps no session for it, its cache being full).
FETCH_REQUESTS = Counter[str]()
SESSION_RESETS = Counter[str]()


def next_epoch(epoch: int) -> int:
    """The epoch after `epoch`: 1 after the last (0 would open a new session)."""
    return 1 if epoch >= MAX_EPOCH else epoch + 1


def session_changes(
    held: Mapping[tuple[str, int], tuple[int, int]], wanted: Partitions
) -> tuple[Partitions, list[tuple[str, int]]]:
    """What an incremental request names: the wanted partitions the session does not hold
    as wanted (new ones, or a moved offset or size), and the held ones no longer wanted."""
    changed = {tp: part for tp, part in wanted.items() if held.get(tp) != part}
    forgotten = [tp for tp in held if tp not in wanted]
    return changed, forgotten


def by_topic(items: Iterable[tuple[tuple[str, int], T]]) -> list[tuple[str, list[T]]]:
    """((topic, partition), item) pairs as a request lists them: per topic, in order."""
    topics: dict[str, list[T]] = {}
    for (topic, _), item in items:
        topics.setdefault(topic, []).append(item)
    return list(topics.items())


class FetchSession:
    """One node's session as the consumer knows it: its id, the epoch of the next request,
    and the partitions the broker holds with their offsets."""

    __slots__ = ("epoch", "held", "session_id")

    def __init__(self) -> None:
        self.session_id = NO_SESSION
        self.epoch = INITIAL_EPOCH
        self.held: Partitions = {}

    def restart(self) -> None:
        """The next request is a full one: it closes this session and opens another."""
        self.epoch = INITIAL_EPOCH
        self.held = {}

    def request(self, wanted: Partitions) -> tuple[int, int, Partitions, list[tuple[str, int]]]:
        """The next request's session id, epoch, partitions and forgotten partitions for
        `wanted`; the session then holds `wanted`."""
        full = self.epoch == INITIAL_EPOCH  # names every partition, forgets none
        changed, forgotten = session_changes({} if full else self.held, wanted)
        FETCH_REQUESTS["full" if full else "incremental"] += 1
        self.held = wanted
        return self.session_id, self.epoch, changed, forgotten

    def answered(self, epoch: int, error_code: int, session_id: int) -> None:
        """The broker's answer to the request of `epoch`."""
        if error_code:  # an unknown session or an epoch out of step: start again
            SESSION_RESETS["error"] += 1
            self.restart()
        elif epoch == INITIAL_EPOCH:
            self.session_id = session_id
            if session_id == NO_SESSION:  # the broker keeps none (its cache is full)
                SESSION_RESETS["refused"] += 1
                self.restart()
            else:
                self.epoch = next_epoch(INITIAL_EPOCH)
        else:
            self.epoch = next_epoch(epoch)


class SessionFetchRequest(FetchRequest):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's fetch request, encoded as the next request of `session`. Its `topics`
    stay every partition asked for: aiokafka matches each partition of the response to the
    offset it asked for, and an incremental response may name any of them."""

    def __init__(self, session: FetchSession, request: FetchRequest) -> None:
        super().__init__(
            request._max_wait_ms,
            request._min_bytes,
            request._max_bytes,
            request._isolation_level,
            request._topics,
            request._rack_id,
        )
        self.session = session
        self.epoch: int | None = None  # of the session, once encoded

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < FIRST_SESSION_VERSION:  # no sessions: in full
            FETCH_REQUESTS["full"] += 1
            return super().build(request_struct_class)
        wanted = {
            (topic, partition): (offset, max_bytes)
            for topic, partitions in self._topics
            for partition, offset, max_bytes in partitions
        }
        session_id, self.epoch, changed, forgotten = self.session.request(wanted)
        named = FetchRequest(
            self._max_wait_ms,
            self._min_bytes,
            self._max_bytes,
            self._isolation_level,
            by_topic((tp, (tp[1], *part)) for tp, part in changed.items()),
            self._rack_id,
        )
        # aiokafka lays each partition out for the version; the session's fields are ours
        struct = named.build(request_struct_class)
        struct.session_id = session_id
        struct.session_epoch = self.epoch
        struct.forgotten_topics_data = by_topic((tp, tp[1]) for tp in forgotten)
        return struct

    def answered(self, response: Any) -> None:
        """Keeps the session in step with the broker's `response`."""
        if self.epoch is not None:
            self.session.answered(self.epoch, response.error_code, response.session_id)


def _sessions(fetcher: Fetcher) -> dict[int, FetchSession]:
    """The fetcher's session with each node, made on its first fetch."""
    sessions: dict[int, FetchSession] | None = getattr(fetcher, "_fetch_sessions", None)
    if sessions is None:
        sessions = fetcher._fetch_sessions = {}
    return sessions


def install_fetch_sessions() -> None:
    """Every aiokafka consumer of this process fetches in sessions (once; a test restores
    the two methods it replaces to take it back)."""
    if getattr(Fetcher._get_actions_per_node, "in_sessions", False):
        return
    actions_per_node = Fetcher._get_actions_per_node
    send = AIOKafkaClient.send

    def get_actions_per_node(self: Fetcher, assignment: Any) -> Any:
        fetch_requests, *rest = actions_per_node(self, assignment)
        sessions = _sessions(self)
        in_sessions = []
        for node_id, request in fetch_requests:
            session = sessions.get(node_id)
            if session is None:
                session = sessions[node_id] = FetchSession()
            in_sessions.append((node_id, SessionFetchRequest(session, request)))
        return (in_sessions, *rest)

    async def send_in_session(self: AIOKafkaClient, node_id: int, request: Any, **kw: Any) -> Any:
        if type(request) is not SessionFetchRequest:
            return await send(self, node_id, request, **kw)
        try:
            response = await send(self, node_id, request, **kw)
        except BaseException:
            # Sent or not, answered or not (a cancelled fetch): the broker's epoch is unknown.
            SESSION_RESETS["unanswered"] += 1
            request.session.restart()
            raise
        request.answered(response)
        return response

    get_actions_per_node.in_sessions = True  # type: ignore[attr-defined]
    Fetcher._get_actions_per_node = get_actions_per_node
    AIOKafkaClient.send = send_in_session
