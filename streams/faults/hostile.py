"""Hostile input: records a worker must dead-letter, once each, without stopping or slowing.

For every input topic: undecodable bytes, an unknown schema fingerprint, a record that breaks
the contract, a record over 1 MiB, a random binary key, an empty value and a tombstone.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from streams.contracts import AvroCodec
from streams.contracts.codec import MARKER
from streams.contracts.records import ClockAdvanced, InputEvent, to_avro

KINDS = (
    "undecodable",
    "unknown-fingerprint",
    "contract-breaking",
    "over-1-MiB",
    "random-key",
    "empty-value",
    "tombstone",
)
OVERSIZED_BYTES = 1_200_000  # over 1 MiB: input topics must accept it (max.message.bytes)


@dataclass(frozen=True)
class HostileRecord:
    kind: str
    topic: str  # the contract topic
    key: bytes | None
    value: bytes | None


def _contract_breaking(codec: AvroCodec, sample: InputEvent | ClockAdvanced) -> bytes:
    """A record its schema accepts and its contract refuses (an empty id, or a time in 1970)."""
    datum = to_avro(sample)
    if "event_id" in datum:
        datum["event_id"] = " "
    else:
        datum["at"] = 0
    return codec.encode(sample.topic, datum)


def hostile_records(
    samples: dict[str, InputEvent | ClockAdvanced], rng: random.Random
) -> Iterator[HostileRecord]:
    """One record of each kind for each topic of `samples` (a valid record per topic)."""
    codec = AvroCodec()
    for topic, sample in samples.items():
        good_key = sample.key.encode() if sample.key else None
        yield HostileRecord("undecodable", topic, good_key, rng.randbytes(40))
        unknown = MARKER + rng.randbytes(8) + codec.encode_record(sample)[10:]
        yield HostileRecord("unknown-fingerprint", topic, good_key, unknown)
        yield HostileRecord("contract-breaking", topic, good_key, _contract_breaking(codec, sample))
        yield HostileRecord("over-1-MiB", topic, good_key, rng.randbytes(OVERSIZED_BYTES))
        yield HostileRecord("random-key", topic, rng.randbytes(24), rng.randbytes(64))
        yield HostileRecord("empty-value", topic, good_key, b"")
        yield HostileRecord("tombstone", topic, good_key or b"tombstone", None)  # needs a key
