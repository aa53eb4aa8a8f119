"""Dead letters: a bad input record, byte for byte, with where it came from and what was wrong."""

from __future__ import annotations

import hashlib

from streams.contracts.records import DeadLetter

# A dead letter must always fit on its topic (1 MiB by default, headers and key included):
# a longer bad value is kept up to here, its length and digest in the message.
MAX_VALUE_BYTES = 256 * 1024


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
    message = str(error)[:2000]
    if value is not None and len(value) > MAX_VALUE_BYTES:
        digest = hashlib.sha256(value).hexdigest()
        message += (
            f" [value of {len(value)} bytes cut to its first {MAX_VALUE_BYTES}; sha256 {digest}]"
        )
        value = value[:MAX_VALUE_BYTES]
    return DeadLetter(
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key,
        value=value,
        error_class=type(error).__name__,
        error_message=message,
        dead_lettered_at=now_ms,
    )
