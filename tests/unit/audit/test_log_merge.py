"""RULES.md, Time (the same log gives the same outputs): the replay from Kafka takes its log
head first while the partitions are read (LogMerge), and that log is the one the full sort
gives (LogBuilder), however the fetches come; when it cannot be, it says so."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.audit.sources import LogBuilder, LogMerge
from streams.contracts import AvroCodec
from streams.kafka.reader import PartitionRecords, RawRecord
from tests.builders import T0, lead, paid, signed

CONTRACTS = {t: t for t in ("lead-submitted", "client-signed", "invoice-paid", "referral-refused")}
_codec = AvroCodec()


def _partition(topic: str, partition: int, stamps: Iterable[int]) -> list[RawRecord]:
    """Records of one partition, in offset order, with these Kafka timestamps."""
    records = []
    for offset, stamp in enumerate(stamps):
        event = {
            "lead-submitted": lead(lead_id=f"lead-{partition}-{offset}"),
            "client-signed": signed(lead_id=f"lead-{partition}-{offset}"),
            "invoice-paid": paid(account_id=f"acc-{partition}-{offset}"),
        }[topic]
        records.append(
            RawRecord(topic, partition, offset, stamp, None, _codec.encode_record(event))
        )
    return records


def _sorted_log(partitions: dict[tuple[str, int], list[RawRecord]]) -> list[object]:
    builder = LogBuilder(CONTRACTS)
    for records in partitions.values():
        for r in records:
            builder.add(r)
    return list(builder.log().entries)


def _fetch(key: tuple[str, int], records: list[RawRecord], done: bool) -> PartitionRecords:
    return PartitionRecords(key[0], key[1], records, done)


@st.composite
def _reads(draw: st.DrawFn) -> tuple[dict[tuple[str, int], list[RawRecord]], list[int]]:
    """Partitions with timestamps that never go back (ties across partitions included), and
    a random schedule: which partition's next chunk each fetch brings."""
    partitions = {}
    for topic in ("lead-submitted", "client-signed", "invoice-paid"):
        for p in range(draw(st.integers(1, 3))):
            gaps = draw(st.lists(st.integers(0, 3), max_size=8))
            stamps, at = [], T0
            for gap in gaps:
                at += gap
                stamps.append(at)
            partitions[topic, p] = _partition(topic, p, stamps)
    schedule = draw(st.lists(st.integers(0, len(partitions) - 1), max_size=40))
    return partitions, schedule


@settings(max_examples=60, deadline=None)
@given(read=_reads(), limits=st.lists(st.integers(1, 5), min_size=1, max_size=10))
def test_time_the_merged_log_is_the_sorted_log_however_the_fetches_come(
    read: tuple[dict[tuple[str, int], list[RawRecord]], list[int]], limits: list[int]
) -> None:
    partitions, schedule = read
    merge = LogMerge(CONTRACTS, [k for k, records in partitions.items() if records])
    left = {k: list(records) for k, records in partitions.items() if records}
    taken: list[object] = []
    keys = list(partitions)
    steps = 0
    while not merge.drained:
        # The schedule first, then every partition in turn until all is read.
        key = keys[schedule[steps] if steps < len(schedule) else steps % len(keys)]
        steps += 1
        if key in left:
            # A fetch brings one or two records of one partition; the last says done.
            chunk, left[key] = left[key][:2], left[key][2:]
            merge.put([_fetch(key, chunk, not left[key])])
            if not left[key]:
                del left[key]
        taken += merge.take(limits[steps % len(limits)])
    assert not merge.reordered
    assert taken == _sorted_log(partitions)


def test_time_nothing_is_taken_while_a_partition_being_read_has_shown_nothing() -> None:
    leads = _partition("lead-submitted", 0, [T0 + 5, T0 + 6])
    merge = LogMerge(CONTRACTS, [("lead-submitted", 0), ("client-signed", 0)])
    merge.put([_fetch(("lead-submitted", 0), leads, True)])
    assert merge.take(10) == []  # a signature stamped before T0 + 5 may still come
    signatures = _partition("client-signed", 0, [T0 + 1])
    merge.put([_fetch(("client-signed", 0), signatures, False)])
    assert merge.take(10) == _sorted_log({("s", 0): signatures})  # the leads wait for more
    merge.put([_fetch(("client-signed", 0), [], True)])
    assert merge.take(10) == _sorted_log({("l", 0): leads})
    assert merge.drained
    assert not merge.reordered


def test_time_a_partition_whose_timestamps_go_back_makes_the_log_reordered_to_be_sorted_whole() -> (
    None
):
    leads = _partition("lead-submitted", 0, [T0 + 1, T0 + 5, T0 + 2])
    signatures = _partition("client-signed", 0, [T0 + 3, T0 + 4])
    merge = LogMerge(CONTRACTS, [("lead-submitted", 0), ("client-signed", 0)])
    merge.put([_fetch(("lead-submitted", 0), leads, True)])
    merge.put([_fetch(("client-signed", 0), signatures, True)])
    merge.take(4)  # up to T0 + 5: the lead stamped T0 + 2 is next, behind it
    assert not merge.reordered
    merge.take(1)
    assert merge.reordered
    whole = {("lead-submitted", 0): leads, ("client-signed", 0): signatures}
    assert merge.log().entries == _sorted_log(whole)


def test_time_undecodable_records_are_counted_and_hold_nothing_up() -> None:
    leads = _partition("lead-submitted", 0, [T0 + 1, T0 + 3])
    bad = RawRecord("lead-submitted", 0, 1, T0 + 2, None, b"\x00not avro")
    merge = LogMerge(CONTRACTS, [("lead-submitted", 0)])
    merge.put([_fetch(("lead-submitted", 0), [leads[0], bad, leads[1]], True)])
    assert merge.take(10) == _sorted_log({("lead-submitted", 0): leads})
    assert merge.skipped == {"lead-submitted": 1}
    assert merge.drained
