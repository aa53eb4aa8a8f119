"""The replay's output files: identical whether formatted in place or in the second process,
and all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.replay_files import OutputWriterError, ReplayFiles, output_files
from streams.rules.model import Output
from tests.builders import DAY, T0, lead, paid, signed
from tests.unit.rules.conftest import run


@pytest.fixture(scope="module")
def outputs() -> list[Output]:
    events = []
    for n in range(12):
        events += [lead(f"lead-{n}"), signed(f"lead-{n}"), paid(f"acc-lead-{n}")]
    result = run(events, as_of=T0 + 40 * DAY)
    assert len(result.rewards) == 12
    return result.outputs


def _write(
    out: Path, outputs: list[Output], batch: int, *, background: bool = True
) -> dict[str, bytes]:
    files = ReplayFiles(out, batch=batch, background=background)
    try:
        for output in outputs:
            files.write(output)
        files.commit()
    finally:
        files.discard()
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_the_formatting_process_writes_what_inline_formatting_writes(
    outputs: list[Output], tmp_path: Path
) -> None:
    inline = _write(tmp_path / "inline", outputs, batch=10**6)
    beside = _write(tmp_path / "beside", outputs, batch=5)  # several batches, then the rest
    in_place = _write(tmp_path / "in-place", outputs, batch=5, background=False)
    assert set(inline) == {"reward-granted.jsonl", "referral-decisions.jsonl"}
    assert inline == beside
    assert inline == in_place
    assert inline["reward-granted.jsonl"].count(b"\n") == 12


def _write_then_fail(out: Path, outputs: list[Output], *, background: bool) -> None:
    with output_files(out, background=background) as write:
        for output in outputs:
            write(output)
        raise ZeroDivisionError


def _finish(files: ReplayFiles, outputs: list[Output]) -> None:
    for output in outputs:
        files.write(output)
    files.commit()


@pytest.mark.parametrize("background", [True, False], ids=["beside", "in-place"])
def test_a_failed_replay_leaves_no_file_behind(
    outputs: list[Output], tmp_path: Path, background: bool
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ZeroDivisionError):
        _write_then_fail(out, outputs * 500, background=background)  # past one batch
    assert list(out.iterdir()) == []


def test_a_formatting_process_that_dies_fails_the_replay_and_leaves_no_file(
    outputs: list[Output], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    files = ReplayFiles(out, batch=5)
    try:
        for output in outputs[:5]:
            files.write(output)  # starts the process
        assert files._child is not None
        files._child.kill()
        files._child.join()
        with pytest.raises(OutputWriterError):
            _finish(files, outputs[5:])
    finally:
        files.discard()
    assert list(out.iterdir()) == []
