"""`referral-rewards replay --events FILE.jsonl`: files, summary, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main
from streams.contracts import ClockAdvanced, JsonlCodec, ReferrerKind
from tests.builders import DAY, T0, lead, paid, referrer, refused, signed


def _write_events(path: Path, events: list[object]) -> Path:
    with path.open("w") as out:
        JsonlCodec().write(events, out)  # type: ignore[arg-type]
    return path


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    events = [
        lead("lead-1"),
        signed("lead-1"),
        paid("acc-lead-1"),
        lead("lead-2", referrer_=referrer(kind=ReferrerKind.PARTNER)),
        lead("lead-3"),
        refused("lead-3", at=T0 + DAY),
        lead("lead-4"),
        signed("lead-4", months=6),
    ]
    return _write_events(tmp_path / "events.jsonl", events)


def test_replay_writes_both_files_and_prints_a_summary(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "replay",
            "--events",
            str(events_file),
            "--out",
            str(out),
            "--as-of",
            "2026-03-01T00:00:00Z",
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("8 events: 1 rewards (5000 cents")
    assert "commitment_too_short=1" in summary
    assert "referrer_excluded=1" in summary
    assert "refused_by_ringover=1" in summary
    rewards = [json.loads(line) for line in (out / "reward-granted.jsonl").read_text().splitlines()]
    assert [r["value"]["lead_id"] for r in rewards] == ["lead-1"]
    assert rewards[0]["topic"] == "reward-granted"
    assert rewards[0]["value"]["granted_at"] == "2026-01-21T10:00:00Z"
    decisions = (out / "referral-decisions.jsonl").read_text().splitlines()
    statuses = [json.loads(d)["value"]["status"] for d in decisions]
    assert statuses.count("REJECTED") == 3
    assert statuses[-1] == "GRANTED"  # emitted when the clock passed the hold's end


def test_without_as_of_the_clock_stops_at_the_latest_event(
    events_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(["replay", "--events", str(events_file), "--out", str(out)]) == 0
    assert (out / "reward-granted.jsonl").read_text() == ""  # the hold has not ended yet


def test_output_files_read_back_as_records(events_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    main(
        [
            "replay",
            "--events",
            str(events_file),
            "--out",
            str(out),
            "--as-of",
            "2026-03-01T00:00:00Z",
        ]
    )
    for name in ("reward-granted.jsonl", "referral-decisions.jsonl"):
        assert list(JsonlCodec().read_file(out / name))


def test_a_bad_line_stops_the_replay_with_line_and_field_and_exit_2(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = events_file.read_text().splitlines()
    broken = json.loads(lines[2])
    broken["value"]["invoice_sequence"] = 0
    lines[2] = json.dumps(broken)
    events_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["replay", "--events", str(events_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err
    assert "invoice_sequence" in err
    assert not (out / "reward-granted.jsonl").exists()  # nothing half-written
    assert list(out.iterdir()) == []


def test_an_output_topic_in_the_input_is_a_bad_line(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    main(
        [
            "replay",
            "--events",
            str(events_file),
            "--out",
            str(out),
            "--as-of",
            "2026-03-01T00:00:00Z",
        ]
    )
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(events_file.read_text() + (out / "referral-decisions.jsonl").read_text())
    assert main(["replay", "--events", str(mixed), "--out", str(tmp_path / "o2")]) == 2
    assert "line 9: topic 'referral-decisions' is not an input topic" in capsys.readouterr().err


def test_bad_terms_and_bad_as_of_exit_2(
    events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_terms = tmp_path / "terms.toml"
    bad_terms.write_text("[program]\n")
    assert (
        main(
            [
                "replay",
                "--events",
                str(events_file),
                "--terms",
                str(bad_terms),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "program.starts_at: missing" in capsys.readouterr().err
    assert (
        main(
            [
                "replay",
                "--events",
                str(events_file),
                "--as-of",
                "soon",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_the_installed_command_runs_replay(events_file: Path, tmp_path: Path) -> None:
    """Through the console script, as operators run it; identical bytes on a second run."""
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        args = ["replay", "--events", str(events_file), "--out", str(out)]
        done = subprocess.run(
            [sys.executable, "-m", "streams", *args, "--as-of", "2026-03-01T00:00:00Z"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    for name in ("reward-granted.jsonl", "referral-decisions.jsonl"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


def test_clock_records_in_the_log_advance_the_clock(events_file: Path, tmp_path: Path) -> None:
    """RULES.md, Time: explicit clock records move the clock; here one past the hold's end."""
    clock = JsonlCodec().format(ClockAdvanced(at=T0 + 30 * DAY))
    events_file.write_text(events_file.read_text() + clock + "\n")
    out = tmp_path / "out"
    assert main(["replay", "--events", str(events_file), "--out", str(out)]) == 0
    assert len((out / "reward-granted.jsonl").read_text().splitlines()) == 1


def test_a_replay_from_kafka_that_cannot_read_says_why_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["replay", "--from-kafka", "--bootstrap", "127.0.0.1:9", "--quiet",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "referral-rewards replay: reading the input topics from 127.0.0.1:9 failed: "
    )
    assert "KafkaConnectionError" in err
    assert not (tmp_path / "out" / "reward-granted.jsonl").exists()
