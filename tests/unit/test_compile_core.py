"""The compiled rules core: never stale, and it replays exactly as the sources do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams import compile_core
from streams.contracts import JsonlCodec
from streams.scenario import ScenarioShape, generate


def test_a_compiled_module_older_than_a_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit after `make compile` would be silently ignored: the import refuses instead."""
    rules, contracts = tmp_path / "rules", tmp_path / "contracts"
    rules.mkdir()
    contracts.mkdir()
    monkeypatch.setattr(compile_core, "RULES", rules)
    monkeypatch.setattr(compile_core, "SOURCES", (rules, contracts))
    suffix = compile_core.EXTENSION_SUFFIXES[0]
    # with one left from a module no longer compiled: it would still be imported
    built = [rules / f"lead{suffix}", rules / f"lead__mypyc{suffix}", rules / f"model{suffix}"]
    for path in [rules / "lead.py", contracts / "records.py", *built]:
        path.write_text("")
    for path in built:
        os.utime(path, (2_000_000, 2_000_000))
    os.utime(contracts / "records.py", (1_000_000, 1_000_000))
    os.utime(rules / "lead.py", (1_000_000, 1_000_000))
    compile_core.refuse_stale()  # built after every source: fine

    os.utime(contracts / "records.py", (3_000_000, 3_000_000))  # a record changed since
    assert compile_core.stale_files() == sorted(built)
    with pytest.raises(compile_core.StaleBuildError, match="make compile"):
        compile_core.refuse_stale()
    assert compile_core.clean() == 3
    compile_core.refuse_stale()  # nothing compiled: the sources run


def test_time_the_same_log_gives_the_same_outputs_compiled_or_from_the_sources(
    tmp_path: Path,
) -> None:
    """Same log, same rewards, whichever build runs it: a replay with the core as installed
    (compiled by `make compile` when a C compiler is there) against one with a copy of the
    package holding the sources alone."""
    log = tmp_path / "events.jsonl"
    with log.open("w") as out:
        JsonlCodec().write(generate(ScenarioShape(leads=800, referrers=40)), out)
    sources_only = tmp_path / "sources"
    shutil.copytree(
        compile_core.PACKAGE,
        sources_only / "streams",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )

    schemas = {"REFERRAL_SCHEMAS_DIR": str(compile_core.PACKAGE.parent / "schemas")}

    def replay(out: str, pythonpath: str | None) -> str:
        env = {**os.environ, **schemas}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        command = [sys.executable, "-m", "streams", "replay", "--events", str(log)]
        subprocess.run(
            [*command, "--out", str(tmp_path / out)],
            env=env,
            cwd=tmp_path,  # not the project: `python -m` puts the working directory first
            check=True,
            capture_output=True,
        )
        where = subprocess.run(
            [sys.executable, "-c", "import streams.rules.lead as m; print(m.__file__)"],
            env=env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        )
        return where.stdout.strip()

    installed = replay("out-installed", None)
    assert installed.endswith(".so") == bool(compile_core.compiled_files())
    assert replay("out-sources", str(sources_only)) == str(sources_only / "streams/rules/lead.py")
    for name in ("reward-granted.jsonl", "referral-decisions.jsonl"):
        expected = (tmp_path / "out-sources" / name).read_bytes()
        assert expected.count(b"\n") > 100
        assert (tmp_path / "out-installed" / name).read_bytes() == expected
