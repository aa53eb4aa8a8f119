"""The JSONL convention of RULES.md: reading, writing, and bad lines with line and field."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.contracts import JsonlCodec, JsonlError, format_time, parse_time
from tests.builders import sample_records


def test_round_trip_of_every_topic() -> None:
    codec = JsonlCodec()
    records = sample_records()
    out = io.StringIO()
    codec.write(records, out)
    back = [record for _, record in codec.read(out.getvalue().splitlines())]
    assert back == records


def test_values_are_plain_json_with_iso_times_and_enum_symbols() -> None:
    line = JsonlCodec().format(sample_records()[0])
    value = json.loads(line)["value"]
    assert json.loads(line)["topic"] == "lead-submitted"
    assert value["occurred_at"] == "2026-01-05T10:00:00Z"
    assert value["referrer"]["kind"] == "CLIENT"


def test_times_with_and_without_milliseconds() -> None:
    assert parse_time("2026-01-05T10:00:00Z") == parse_time("2026-01-05T10:00:00.000Z")
    assert format_time(parse_time("2026-01-05T10:00:00.250Z")) == "2026-01-05T10:00:00.250Z"
    with pytest.raises(ValueError, match="not a UTC time"):
        parse_time("2026-01-05T10:00:00")


@given(st.integers(min_value=-(10**12), max_value=253_402_300_799_999))
def test_format_time_is_iso_8601_utc_and_reads_back(ms: int) -> None:
    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    )[:-3]
    formatted = format_time(ms)
    assert formatted.removesuffix("Z") in (expected, expected.removesuffix(".000"))
    assert parse_time(formatted) == ms


def test_optional_fields_may_be_omitted() -> None:
    line = json.dumps(
        {
            "topic": "referral-refused",
            "value": {"event_id": "e", "occurred_at": "2026-01-05T10:00:00Z", "lead_id": "l"},
        }
    )
    record = JsonlCodec().parse_line(line, 1)
    assert record.note is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value_patch", "field", "message"),
    [
        ({"commitment_months": "12"}, "commitment_months", "must be an integer"),
        ({"occurred_at": "yesterday"}, "occurred_at", "bad timestamp"),
        ({"account_id": None}, "account_id", "must be a string"),
        ({"commitment_months": 0}, "commitment_months", "must be >= 1"),
        ({"colour": "red"}, None, "unknown field 'colour'"),
    ],
)
def test_bad_line_is_reported_with_line_number_and_field(
    value_patch: dict[str, object], field: str | None, message: str
) -> None:
    good = {
        "event_id": "e",
        "occurred_at": "2026-01-05T10:00:00Z",
        "lead_id": "l",
        "account_id": "a",
        "commitment_months": 12,
    }
    lines = [
        json.dumps({"topic": "client-signed", "value": good}),
        "",
        json.dumps({"topic": "client-signed", "value": {**good, **value_patch}}),
    ]
    with pytest.raises(JsonlError) as caught:
        list(JsonlCodec().read(lines))
    assert caught.value.line == 3
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith("line 3:")


def test_missing_nested_field_names_its_path() -> None:
    line = JsonlCodec().format(sample_records()[0])
    broken = json.loads(line)
    del broken["value"]["referrer"]["kind"]
    with pytest.raises(JsonlError) as caught:
        JsonlCodec().parse_line(json.dumps(broken), 7)
    assert caught.value.field == "referrer.kind"
    assert "is missing" in str(caught.value)


def test_unknown_topic_and_non_json_lines() -> None:
    with pytest.raises(JsonlError, match="unknown topic"):
        JsonlCodec().parse_line('{"topic": "nope", "value": {}}', 1)
    with pytest.raises(JsonlError, match="not JSON"):
        JsonlCodec().parse_line("{", 1)


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: type(r).__name__)
def test_jsonl_a_compiled_line_is_what_the_json_encoder_writes(record: object) -> None:
    codec = JsonlCodec()
    assert codec.format(record) == codec.format_generic(record)  # type: ignore[arg-type]


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@given(
    lead_id=_TEXT,
    cause=st.none() | _TEXT,
    sources=st.lists(_TEXT, max_size=3),
    at=st.integers(-(10**12), 4 * 10**12),
)
def test_jsonl_compiled_lines_quote_any_text_and_time_as_the_encoder_does(
    lead_id: str, cause: str | None, sources: list[str], at: int
) -> None:
    codec = JsonlCodec()
    for sample in sample_records():
        if sample.topic == "referral-decisions":
            record = replace(sample, lead_id=lead_id, cause_event_id=cause, decided_at=at)
        elif sample.topic == "reward-granted":
            record = replace(sample, lead_id=lead_id, source_event_ids=tuple(sources))
        else:
            continue
        line = codec.format(record)
        assert line == codec.format_generic(record)
        assert json.loads(line)["value"]["lead_id"] == lead_id
