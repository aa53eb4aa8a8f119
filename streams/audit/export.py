"""`referral-rewards export`: any project topic as decoded JSONL (readable by `replay`)."""

from __future__ import annotations

from typing import IO

from streams.contracts import AvroCodec, CodecError, JsonlCodec
from streams.kafka.reader import ReadProgress, read_topics


async def export_topic(
    bootstrap: str,
    kafka_topic: str,
    contract: str,
    out: IO[str],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    quiet: bool = False,
) -> tuple[int, int]:
    """Write each record as a JSONL line; returns (written, undecodable)."""
    codec, jsonl = AvroCodec(), JsonlCodec()
    written = bad = 0
    with ReadProgress(f"exporting {kafka_topic}", quiet=quiet) as progress:
        async for record in read_topics(
            bootstrap, [kafka_topic], since_ms=since_ms, until_ms=until_ms, progress=progress
        ):
            try:
                decoded = codec.decode_record(contract, record.value or b"")
            except CodecError:
                bad += 1
                continue
            out.write(jsonl.format(decoded) + "\n")
            written += 1
    return written, bad
