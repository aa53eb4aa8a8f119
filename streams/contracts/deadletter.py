"""Dead letters: a bad input record, byte for byte, with where it came from and what was wrong."""

from __future__ import annotations

from streams.contracts.records import DeadLetter


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: BaseException,
    now_ms: int,
) -> DeadLetter:
    """The record to publish on the dead-letter topic for `error` raised by this input."""
    return DeadLetter(
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key,
        value=value,
        error_class=type(error).__name__,
        error_message=str(error)[:2000],
        dead_lettered_at=now_ms,
    )
