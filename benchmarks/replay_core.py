"""Where the time of a JSONL replay goes: JSON in, the rules, JSON out.

    make bench                      # 1,000,000 events
    python -m benchmarks.replay_core --events 200000

Generates a seeded, realistic backlog (streams.scenario), then times each stage alone on the
same data, best of --repeat runs in CPU time; then the replay itself, end to end and stage by
stage: the file is read in chunks of 10,000 lines, each chunk parsed, run through one Engine
and written, with the CPU time of each stage summed (the stages as they run inside a replay,
with its memory and caches, rather than alone). Not a test: it asserts nothing and is never
run by `make test`.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streams.contracts import ClockAdvanced, JsonlCodec
from streams.replay import input_events, quiet_gc, replay
from streams.replay_files import output_files
from streams.rules import Engine, Programme, load_terms
from streams.scenario import ScenarioShape, generate

EVENTS_PER_LEAD = 3.45  # what the scenario's proportions give
CHUNK = 10_000


def staged_replay(log: Path, programme: Programme, out: Path, as_of: int) -> dict[str, float]:
    """The replay, chunk by chunk, with the CPU seconds of parse, rules and write summed."""
    codec = JsonlCodec()
    engine = Engine(programme)
    spent = {"parse": 0.0, "rules": 0.0, "write": 0.0}
    clock = time.process_time
    with quiet_gc(), log.open(encoding="utf-8") as lines, output_files(out) as write:
        numbered = enumerate(lines, start=1)
        while chunk := list(itertools.islice(numbered, CHUNK)):
            start = clock()
            events = [codec.parse_line(text, number) for number, text in chunk]
            parsed = clock()
            outputs = [output for event in events for output in engine.apply(event)]  # type: ignore[arg-type]
            if len(chunk) < CHUNK:
                outputs += engine.advance_to(as_of)
            ruled = clock()
            for output in outputs:
                write(output)
            written = clock()
            spent["parse"] += parsed - start
            spent["rules"] += ruled - parsed
            spent["write"] += written - ruled
    return spent


def _best(
    stage: Callable[[], object], repeat: int, clock: Callable[[], float] = time.process_time
) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = clock()
        with quiet_gc():
            stage()
        times.append(clock() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    shape = ScenarioShape(leads=int(args.events / EVENTS_PER_LEAD), referrers=20_000)
    programme = load_terms()
    codec = JsonlCodec()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.jsonl"
        with log.open("w") as out:
            count = codec.write(generate(shape), out)
        lines = log.read_text().splitlines()
        records = [record for _, record in codec.read(lines)]
        events = list(input_events(enumerate(records, start=1)))
        as_of = max(e.at if isinstance(e, ClockAdvanced) else e.occurred_at for e in events)
        as_of += 90 * 86_400_000
        outputs = Engine(programme).run(events, as_of=as_of)
        # The stages' inputs live for the whole benchmark: frozen, the collection that ends
        # each stage (quiet_gc) walks only what the stage itself made, as in a real replay,
        # instead of millions of the benchmark's own objects charged to every stage alike.
        gc.collect()
        gc.freeze()

        stages: list[tuple[str, Callable[[], object]]] = [
            ("json.loads only", lambda: [json.loads(line) for line in lines]),
            ("parse: JSON -> checked records", lambda: list(codec.read(lines))),
            (
                "rules: Engine over parsed events",
                lambda: Engine(programme).run(events, as_of=as_of),
            ),
            ("format outputs as JSONL", lambda: [codec.format(o) for o in outputs]),
        ]
        end_to_end = (
            # Wall-clock: the JSON of the outputs is formatted by a second process.
            "replay end to end, wall-clock",
            lambda: replay(input_events(codec.read_file(log)), programme, Path(tmp) / "out", as_of),
        )
        machine = platform.processor() or platform.machine()
        print(
            f"{count} events, {len(outputs)} outputs; {machine}, "
            f"Python {platform.python_version()}, best of {args.repeat} (CPU seconds)"
        )
        results = {}
        for name, stage in stages:
            seconds = _best(stage, args.repeat)
            results[name] = seconds
            print(
                f"  {name:<42} {seconds:8.2f} s  {count / seconds:>10,.0f} events/s  "
                f"{seconds / count * 1e6:6.1f} us/event"
            )
        name, stage = end_to_end
        seconds = _best(stage, args.repeat, time.perf_counter)
        print(
            f"  {name:<42} {seconds:8.2f} s  {count / seconds:>10,.0f} events/s  "
            f"{seconds / count * 1e6:6.1f} us/event"
        )
        parse = results["parse: JSON -> checked records"]
        rules = results["rules: Engine over parsed events"]
        print(f"  parse / rules = {parse / rules:.2f} (each stage alone)")

        staged = staged_replay(log, programme, Path(tmp) / "staged", as_of)
        total = sum(staged.values())
        print(
            f"replay stage by stage ({CHUNK:,} lines at a time, one run, CPU seconds of this "
            "process: the formatting process's are not in write)"
        )
        for name, seconds in staged.items():
            print(
                f"  {name:<42} {seconds:8.2f} s  {seconds / total:>9.0%} of the replay  "
                f"{seconds / count * 1e6:6.1f} us/event"
            )
        print(f"  parse / rules = {staged['parse'] / staged['rules']:.2f} (inside the replay)")


if __name__ == "__main__":
    main()
