"""Fetch sessions (streams.kafka.fetch_sessions): what each request names, and how the
session follows the broker's answers. Nothing lost or read twice (R13) rests on the
session holding exactly the partitions and offsets the consumer last asked for."""

from __future__ import annotations

from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v7, FetchRequest_v11

from streams.kafka.fetch_sessions import (
    FETCH_REQUESTS,
    INITIAL_EPOCH,
    MAX_EPOCH,
    SESSION_RESETS,
    FetchSession,
    SessionFetchRequest,
    next_epoch,
    session_changes,
)

MB = 1_048_576


def asked(*parts: tuple[str, int, int]) -> FetchRequest:
    """aiokafka's request for (topic, partition, offset) parts."""
    by_topic: dict[str, list[tuple[int, int, int]]] = {}
    for topic, partition, offset in parts:
        by_topic.setdefault(topic, []).append((partition, offset, MB))
    return FetchRequest(500, 1, 50 * MB, 0, list(by_topic.items()))


def named(struct: object) -> dict[tuple[str, int], int]:
    """(topic, partition) -> fetch offset, as a v11 request names them."""
    topics = struct.topics  # type: ignore[attr-defined]
    return {(t, p[0]): p[2] for t, parts in topics for p in parts}


def test_r13_the_first_request_is_full_and_opens_a_session() -> None:
    session = FetchSession()
    request = SessionFetchRequest(session, asked(("a", 0, 5), ("a", 1, 7), ("b", 0, 0)))
    struct = request.build(FetchRequest_v11)
    assert (struct.session_id, struct.session_epoch) == (0, INITIAL_EPOCH)
    assert named(struct) == {("a", 0): 5, ("a", 1): 7, ("b", 0): 0}
    assert struct.forgotten_topics_data == []
    request.answered(type("Answer", (), {"error_code": 0, "session_id": 42})())
    assert (session.session_id, session.epoch) == (42, 1)


def test_r13_an_incremental_request_names_what_moved_and_forgets_what_left() -> None:
    session = FetchSession()
    first = SessionFetchRequest(session, asked(("a", 0, 5), ("a", 1, 7), ("b", 0, 0)))
    first.build(FetchRequest_v11)
    session.answered(INITIAL_EPOCH, 0, 42)
    # a/0 read on to 9; a/1 unchanged; b/0 buffered (not asked for); b/1 newly assigned
    second = SessionFetchRequest(session, asked(("a", 0, 9), ("a", 1, 7), ("b", 1, 3)))
    struct = second.build(FetchRequest_v11)
    assert (struct.session_id, struct.session_epoch) == (42, 1)
    assert named(struct) == {("a", 0): 9, ("b", 1): 3}
    assert struct.forgotten_topics_data == [("b", [0])]
    # aiokafka matches the response against every partition asked for, named or not
    assert second.topics == asked(("a", 0, 9), ("a", 1, 7), ("b", 1, 3)).topics
    second.answered(type("Answer", (), {"error_code": 0, "session_id": 42})())
    assert session.epoch == 2
    assert session.held == {("a", 0): (9, MB), ("a", 1): (7, MB), ("b", 1): (3, MB)}


def test_r13_a_partition_sought_back_is_named_again_at_its_new_offset() -> None:
    held = {("a", 0): (120, MB)}
    changed, forgotten = session_changes(held, {("a", 0): (100, MB)})
    assert changed == {("a", 0): (100, MB)}
    assert forgotten == []
    assert session_changes(held, dict(held)) == ({}, [])


def test_r13_an_error_or_a_lost_answer_starts_again_with_a_full_request() -> None:
    session = FetchSession()
    session.request({("a", 0): (1, MB)})
    session.answered(INITIAL_EPOCH, 0, 42)
    session.request({("a", 0): (2, MB)})
    session.answered(1, 71, 0)  # INVALID_FETCH_SESSION_EPOCH
    session_id, epoch, changed, forgotten = session.request({("a", 0): (2, MB)})
    # the full request names the old session, which closes it on the broker
    assert (session_id, epoch, changed, forgotten) == (42, INITIAL_EPOCH, {("a", 0): (2, MB)}, [])
    session.answered(INITIAL_EPOCH, 0, 43)
    session.request({("a", 0): (3, MB)})
    session.restart()  # the fetch was cancelled: its epoch may or may not have counted
    assert session.request({("a", 0): (3, MB)})[1:] == (INITIAL_EPOCH, {("a", 0): (3, MB)}, [])


def test_r13_a_broker_that_keeps_no_session_gets_full_requests() -> None:
    session = FetchSession()
    session.request({("a", 0): (1, MB)})
    session.answered(INITIAL_EPOCH, 0, 0)  # its session cache is full
    assert session.request({("a", 0): (1, MB)}) == (0, INITIAL_EPOCH, {("a", 0): (1, MB)}, [])


def test_r13_the_epoch_wraps_to_one_never_to_the_initial_epoch() -> None:
    assert next_epoch(1) == 2
    assert next_epoch(MAX_EPOCH) == 1


def test_r13_older_request_versions_keep_their_layout() -> None:
    session = FetchSession()
    v7 = SessionFetchRequest(session, asked(("a", 0, 5))).build(FetchRequest_v7)
    assert v7.topics == [("a", [(0, 5, -1, MB)])]  # no leader epoch before v9
    plain = FetchSession()
    v4 = SessionFetchRequest(plain, asked(("a", 0, 5))).build(FetchRequest_v4)
    assert v4.topics == [("a", [(0, 5, MB)])]  # no sessions before v7: a full fetch
    assert plain.held == {}


def test_r13_requests_and_resets_are_counted_for_the_metrics() -> None:
    requests, resets = dict(FETCH_REQUESTS), dict(SESSION_RESETS)
    session = FetchSession()
    session.request({("a", 0): (1, MB)})
    session.answered(INITIAL_EPOCH, 0, 0)  # refused
    session.request({("a", 0): (1, MB)})
    session.answered(INITIAL_EPOCH, 0, 42)
    session.request({("a", 0): (2, MB)})
    session.answered(1, 70, 0)  # FETCH_SESSION_ID_NOT_FOUND
    assert FETCH_REQUESTS["full"] - requests.get("full", 0) == 2
    assert FETCH_REQUESTS["incremental"] - requests.get("incremental", 0) == 1
    assert SESSION_RESETS["refused"] - resets.get("refused", 0) == 1
    assert SESSION_RESETS["error"] - resets.get("error", 0) == 1
