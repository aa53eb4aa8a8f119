"""The worker refuses to start when an existing topic's partitions break co-partitioning."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streams.kafka.topics import TopicSpec, ensure_topics
from tests.e2e.harness import ROOT

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
