"""Packed records (streams.app.packing): what one step sends another arrives message for
message, in the order it was emitted on its partition (RULES.md R13: a journal replays in that
order), whatever the packing; anything else goes as it was."""

from __future__ import annotations

import pytest

from streams.app.delivery import Outgoing, partition_of
from streams.app.journal import encode_message
from streams.app.packing import MAGIC, PackError, messages_in, pack, unpack
from streams.contracts import AvroCodec
from streams.rules.model import ClockTick

JOURNAL, VIEW, DECISIONS = "app-lead-journal", "app-referrer-view", "referral-decisions"
PARTITIONS = 4


def unpacked(records: list[Outgoing], topic: str) -> dict[int, list[tuple[bytes | None, bytes]]]:
    """Per partition of `topic`, the messages its records hold, in record order."""
    messages: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for record in records:
        if record.topic == topic:
            assert record.partition is not None
            assert record.key is None
            for key, value in unpack(record.key, record.value):
                assert value is not None
                messages.setdefault(record.partition, []).append((key, value))
    return messages


def emitted(records: list[Outgoing], topic: str) -> dict[int, list[tuple[bytes | None, bytes]]]:
    """Per partition of `topic`, the messages as emitted, in emission order."""
    messages: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for record in records:
        if record.topic == topic:
            assert record.value is not None
            partition = record.partition
            if partition is None:
                assert record.key is not None
                partition = partition_of(record.key, PARTITIONS)
            messages.setdefault(partition, []).append((record.key, record.value))
    return messages


def round_of_records(count: int) -> list[Outgoing]:
    records = []
    for n in range(count):
        key = f"lead-{n % 7}".encode()
        records.append(Outgoing(JOURNAL, key, b'{"n": %d}' % n))
        records.append(Outgoing(DECISIONS, key, b"decision %d" % n))
        if n % 5 == 0:
            records.append(Outgoing(VIEW, f"ref-{n % 3}".encode(), b"view %d" % n))
        if n % 11 == 0:  # a clock record: keyless, on a partition of its own choosing
            records.append(Outgoing(JOURNAL, None, b"tick %d" % n, n % PARTITIONS))
    return records


def test_r13_every_message_is_packed_once_in_emission_order_per_partition() -> None:
    records = round_of_records(200)
    packed = pack(records, {JOURNAL, VIEW}, PARTITIONS)
    for topic in (JOURNAL, VIEW):
        assert unpacked(packed, topic) == emitted(records, topic)
        assert len([r for r in packed if r.topic == topic]) <= PARTITIONS
    # what is not bound for a packed topic goes as it was, in its order
    assert [r for r in packed if r.topic == DECISIONS] == [
        r for r in records if r.topic == DECISIONS
    ]


def test_r13_a_pack_is_cut_before_its_limit_and_the_order_holds_across_the_cuts() -> None:
    records = round_of_records(400)
    packed = pack(records, {JOURNAL, VIEW}, PARTITIONS, limit=300)
    journal = [r for r in packed if r.topic == JOURNAL]
    assert len(journal) > PARTITIONS
    assert all(r.value is not None and len(r.value) <= 300 for r in journal)
    assert unpacked(packed, JOURNAL) == emitted(records, JOURNAL)


def test_a_record_weighs_the_messages_it_holds_read_from_its_header() -> None:
    packed = pack(round_of_records(100), {JOURNAL}, PARTITIONS)
    for record in packed:
        assert messages_in(record.value) == len(unpack(record.key, record.value))
    assert messages_in(b'{"type": "ClockTick"}') == 1
    assert messages_in(None) == 1
    assert messages_in(MAGIC) == 1  # too short to say: unpack refuses it


def test_a_message_larger_than_the_limit_goes_in_a_pack_of_its_own() -> None:
    big = b"x" * 1000
    records = [
        Outgoing(JOURNAL, b"k", b"small", 0),
        Outgoing(JOURNAL, b"k", big, 0),
        Outgoing(JOURNAL, b"k", b"small again", 0),
    ]
    packed = pack(records, {JOURNAL}, PARTITIONS, limit=100)
    assert [unpack(r.key, r.value) for r in packed] == [
        [(b"k", b"small")],
        [(b"k", big)],
        [(b"k", b"small again")],
    ]


def test_a_deletion_is_never_packed() -> None:
    with pytest.raises(ValueError, match="deletion"):
        pack([Outgoing(JOURNAL, b"k", None, 0)], {JOURNAL}, PARTITIONS)


def test_a_record_that_is_not_packed_holds_itself() -> None:
    """Journals written before packing (JSON) and records produced by hand still read."""
    tick = encode_message(ClockTick(5))
    assert unpack(b"lead-1", tick) == [(b"lead-1", tick)]
    assert unpack(None, None) == [(None, None)]
    avro = AvroCodec().encode("referral-clock", {"at": 5})
    assert not avro.startswith(MAGIC)
    assert not tick.startswith(MAGIC)


def test_empty_keys_and_values_survive_a_pack() -> None:
    records = [Outgoing(VIEW, b"", b"", 1), Outgoing(VIEW, None, b"", 1)]
    (record,) = pack(records, {VIEW}, PARTITIONS)
    assert unpack(record.key, record.value) == [(b"", b""), (None, b"")]


def test_a_pack_cut_short_anywhere_or_with_bytes_after_it_is_refused() -> None:
    (record,) = pack([Outgoing(JOURNAL, b"key", b"value", 0)] * 3, {JOURNAL}, PARTITIONS)
    value = record.value
    assert value is not None
    for end in range(len(MAGIC), len(value)):
        with pytest.raises(PackError):
            unpack(None, value[:end])
    with pytest.raises(PackError):
        unpack(None, value + b"\x00")
