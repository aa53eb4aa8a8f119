"""Starting a worker: what it refuses (co-partitioning, bad terms) and what it waits for (Kafka)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from streams.contracts import ClockAdvanced
from streams.faults.processes import ROOT, WorkerProcess, free_port
from streams.kafka.topics import TopicSpec, ensure_topics
from tests.builders import DAY, T0, lead, terms_toml
from tests.e2e.harness import produce, wait_for_outputs
from tests.integration.gate import Gate

pytestmark = pytest.mark.integration


async def test_worker_refuses_an_input_topic_with_another_partition_count(
    kafka_bootstrap: str,
) -> None:
    prefix = f"bad-{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka_bootstrap, [TopicSpec(prefix + "invoice-paid", 3)])
    done = subprocess.run(
        [sys.executable, "-m", "streams", "worker", "--bootstrap", kafka_bootstrap,
         "--topic-prefix", prefix, "--app-id", prefix.rstrip("."), "--partitions", "8"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{prefix}invoice-paid has 3 partitions, the topology needs 8" in done.stderr


def test_worker_refuses_a_bad_terms_file(tmp_path: Path) -> None:
    terms = tmp_path / "terms.toml"
    terms.write_text("[program]\nstarts_at = 2021-06-21T00:00:00Z\n")
    done = subprocess.run(
        [sys.executable, "-m", "streams", "worker", "--terms", str(terms)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "terms: missing" in done.stderr


def test_worker_refuses_no_room_for_a_round_in_flight() -> None:
    """An unbounded pipeline (asyncio reads a queue size of 0 as no limit) is refused."""
    done = subprocess.run(
        [sys.executable, "-m", "streams", "worker", "--rounds-in-flight", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "rounds_in_flight must be at least 1, not 0" in done.stderr


def _still_waiting_after(seconds: float, port: int, tmp_path: Path) -> str:
    """Start a worker on 127.0.0.1:`port`; after `seconds` it must still run (waiting, not
    exited). Its log."""
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--bootstrap", f"127.0.0.1:{port}",
             "--data-dir", str(tmp_path), "--web-port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        try:
            time.sleep(seconds)
            assert proc.poll() is None, log.read_text()
        finally:
            proc.kill()
            proc.wait(10)
    return log.read_text()


def test_a_worker_started_before_its_broker_waits_and_says_so_once(tmp_path: Path) -> None:
    """No crash loop and no storm: one line, then backoff (a reminder comes each minute)."""
    text = _still_waiting_after(12, free_port(), tmp_path)  # nothing listens there
    assert text.count("cannot reach Kafka at") == 1, text
    assert len(text.splitlines()) < 10, text


def test_a_worker_whose_broker_closes_connections_while_restarting_waits_for_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A broker being killed or starting closes connections at once, as a TLS listener does
    to a plaintext client; it is waited for, not taken for a misconfiguration (a worker that
    started while the broker restarted used to exit 2 for good)."""
    gate = Gate(kafka_bootstrap)
    gate.close()
    try:
        text = _still_waiting_after(6, gate.port, tmp_path)
    finally:
        gate.stop()
    assert "cannot reach Kafka at" in text, text
    assert "TLS listener" not in text, text


async def test_a_worker_whose_broker_goes_between_its_topic_check_and_faust_start_waits_for_it(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """The worker checks its topics, then Faust starts its clients: a broker restarted in
    between used to stop the worker for good ("Unable to bootstrap", exit 1, as the fault
    harness saw in CI). Its clients now wait for the broker, and the worker then works."""
    terms = tmp_path / "terms.toml"
    terms.write_text(terms_toml())
    gate = Gate(kafka_bootstrap)
    prefix = f"gate-{unique}."
    worker = WorkerProcess(gate.bootstrap, f"gate-{unique}", prefix, tmp_path / "w", terms)
    worker.start()
    try:
        deadline = time.monotonic() + 90
        while "created topics" not in worker.log_path.read_text():
            assert worker.running, worker.log_tail()
            assert time.monotonic() < deadline, worker.log_tail()
            await asyncio.sleep(0.02)
        gate.close()  # as a broker being killed or starting: every connection closed at once
        await asyncio.sleep(5)
        assert worker.running, worker.log_tail()
        log = worker.log_path.read_text()
        assert "cannot bootstrap from" in log, log
        assert log.count("cannot bootstrap from") <= 2, log  # one line per client, not a storm
        gate.open()
        await produce(kafka_bootstrap, prefix, [lead("lead-1", T0), ClockAdvanced(T0 + DAY)])
        outputs = await wait_for_outputs(kafka_bootstrap, prefix, {"referral-decisions": 1})
        assert [d["lead_id"] for d in outputs["referral-decisions"]] == ["lead-1"]
        assert worker.running, worker.log_tail()
        # Nor does Faust declare the checked topics again: a broker going during those
        # requests stopped the worker the same way. Its table queries still find their
        # partitions (Faust's routing reads them from what the declarations refreshed).
        assert "Creating topic" not in worker.log_path.read_text()
        assert worker.get("/referrers/nobody") == (404, {"error": "unknown referrer nobody"})
    finally:
        worker.stop()
        gate.stop()
