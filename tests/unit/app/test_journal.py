"""The journals' wire format (streams.app.journal): what audits replay (RULES.md R13). The
bytes are the compact UTF-8 JSON the standard encoder writes, whatever the text, and every
message reads back as itself."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from streams.app.journal import VERSION, decode_message, encode_message
from streams.rules.model import ClockTick, Displaced


@given(st.text(), st.text(), st.text(), st.text())
def test_r13_journal_bytes_are_the_standard_compact_json(a: str, b: str, c: str, d: str) -> None:
    message = Displaced(lead_id=a, identity=b, by_lead_id=c, by_event_id=d)
    envelope = {"type": "Displaced", "v": VERSION, "value": message._asdict()}
    standard = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode_message(message) == standard
    assert decode_message(standard) == message


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_r13_clock_records_round_trip(at: int) -> None:
    assert decode_message(encode_message(ClockTick(at))) == ClockTick(at)
