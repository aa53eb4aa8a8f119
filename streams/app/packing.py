"""Packed records: a round's messages for one partition of an internal topic in one record.

Every message a step sends to another (the journals, the referrer view) used to be a Kafka
record of its own, and each record costs more in the clients, in Faust and on the broker than
applying its message does. A round's messages bound for one partition go instead in one
record, in the order the round emitted them: the partition's order of messages is the same,
so is every step's, and a redelivered record brings back every message it holds.

A packed value is `MAGIC`, the number of messages, then for each message its key and its
value: every number a 4-byte big-endian unsigned, every key and value its length and its bytes
(length 0xFFFFFFFF: no key). A value without `MAGIC` is one message (what workers wrote
before packing, or a record produced by hand): journal JSON starts with `[` (`{` before round
9), Avro single-object encoding with 0xC3 0x01, none with `MAGIC`'s zero byte. Only internal
topics are packed; the inputs and the output contracts never are.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable

from streams.app.delivery import Outgoing, by_partition

MAGIC = b"\x00RPK"  # referral packed, version 1 of the layout
# A pack is cut before it passes this many bytes: well under the producer's batch (512 KiB)
# and the broker's message.max.bytes (1 MiB). One message larger than this goes alone.
MAX_PACK_BYTES = 256 << 10
_NO_KEY = 0xFFFFFFFF
_LENGTH = struct.Struct(">I")
_HEADER = len(MAGIC) + _LENGTH.size


class PackError(ValueError):
    """A packed record cut short or malformed."""


def pack(
    records: Iterable[Outgoing],
    packed_topics: Collection[str],
    partitions: int,
    limit: int = MAX_PACK_BYTES,
) -> list[Outgoing]:
    """`records` with those bound for `packed_topics` packed, one record per destination
    partition (more if one would pass `limit` bytes), messages in emission order; the
    others as they were, in their order."""
    plain: list[Outgoing] = []
    packable: list[Outgoing] = []
    for record in records:
        (packable if record.topic in packed_topics else plain).append(record)
    if not packable:
        return plain
    length = _LENGTH.pack
    for (topic, partition), group in by_partition(packable, partitions).items():
        parts: list[bytes] = []
        size, count = _HEADER, 0
        for _, key, value, _ in group:
            if value is None:
                raise ValueError(f"a deletion cannot be packed (topic {topic})")
            entry = 8 + len(value) + (0 if key is None else len(key))
            if count and size + entry > limit:
                plain.append(Outgoing(topic, None, _packed(count, parts), partition))
                parts, size, count = [], _HEADER, 0
            if key is None:
                parts.append(length(_NO_KEY))
            else:
                parts.append(length(len(key)))
                parts.append(key)
            parts.append(length(len(value)))
            parts.append(value)
            size += entry
            count += 1
        plain.append(Outgoing(topic, None, _packed(count, parts), partition))
    return plain


def _packed(count: int, parts: list[bytes]) -> bytes:
    return b"".join([MAGIC, _LENGTH.pack(count), *parts])


def messages_in(value: bytes | None) -> int:
    """How many messages a record holds, read from its header alone (1 if not packed; a
    pack too short to say holds 1 too: `unpack` refuses it)."""
    if value is None or len(value) < _HEADER or not value.startswith(MAGIC):
        return 1
    count: int = _LENGTH.unpack_from(value, len(MAGIC))[0]
    return max(count, 1)


def unpack(key: bytes | None, value: bytes | None) -> list[tuple[bytes | None, bytes | None]]:
    """The messages a record holds, in order, as (key, value): a record that is not packed
    holds itself. Raises PackError for a packed value cut short."""
    if value is None or not value.startswith(MAGIC):
        return [(key, value)]
    end = len(value)
    if end < _HEADER:
        raise PackError(f"a packed record of {end} bytes has no message count")
    (count,) = _LENGTH.unpack_from(value, len(MAGIC))
    entries: list[tuple[bytes | None, bytes | None]] = []
    position = _HEADER
    for _ in range(count):
        entry_key, position = _field(value, position, end, keyed=True)
        entry_value, position = _field(value, position, end, keyed=False)
        entries.append((entry_key, entry_value))
    if position != end:
        raise PackError(f"{end - position} bytes after the {count} messages of a packed record")
    return entries


def _field(value: bytes, position: int, end: int, *, keyed: bool) -> tuple[bytes | None, int]:
    """One length-prefixed field of a packed value at `position`, and where the next starts."""
    if position + 4 > end:
        raise PackError(f"a packed record cut short at byte {position} of {end}")
    (size,) = _LENGTH.unpack_from(value, position)
    position += 4
    if keyed and size == _NO_KEY:
        return None, position
    if position + size > end:
        raise PackError(f"a packed field runs {position + size - end} bytes past the record's end")
    return value[position : position + size], position + size
