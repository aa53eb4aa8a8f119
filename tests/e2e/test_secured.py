"""Secured clusters: every client through SASL_SSL (the test broker's second listener), and
each misconfiguration failing fast with one clear line and no secret shown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.contracts import ClockAdvanced
from streams.kafka.connection import Security, use
from tests.builders import DAY, T0, lead, paid, signed, terms_toml
from tests.conftest import broker_config
from tests.e2e.harness import ROOT, WorkerProcess, produce, read_outputs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    """The environment a client needs for the SASL_SSL listener; clients of this process use
    it too while the module runs."""
    cfg = broker_config()
    listener = cfg.secured
    assert cfg.sasl_ssl_bootstrap is not None
    env = {
        "REFERRAL_BOOTSTRAP": cfg.sasl_ssl_bootstrap,
        "REFERRAL_SECURITY_PROTOCOL": "SASL_SSL",
        "REFERRAL_SASL_MECHANISM": "SCRAM-SHA-512",
        "REFERRAL_SASL_USERNAME": "referral",
        "REFERRAL_SASL_PASSWORD_FILE": str(listener.password_file),
        "REFERRAL_SSL_CAFILE": str(listener.ca_pem),
    }
    use(Security.from_env(env))
    yield env
    use(Security())


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


async def test_the_worker_replay_and_audit_run_through_sasl_ssl(
    secured: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = secured["REFERRAL_BOOTSTRAP"]
    password = Path(secured["REFERRAL_SASL_PASSWORD_FILE"]).read_text().strip()
    tag = uuid.uuid4().hex[:8]
    app_id, prefix = f"tls-{tag}", f"tls-{tag}."
    terms = tmp_path / "terms.toml"
    terms.write_text(terms_toml())
    worker = WorkerProcess(bootstrap, app_id, prefix, tmp_path / "w", terms, env=secured).start()
    try:
        worker.wait_ready()
        await produce(
            bootstrap,
            prefix,
            [lead("tls-1"), signed("tls-1"), paid("acc-tls-1"), ClockAdvanced(T0 + 30 * DAY)],
        )
        deadline = time.monotonic() + 120
        outputs: dict[str, list[dict[str, object]]] = {}
        while time.monotonic() < deadline:
            outputs = await read_outputs(bootstrap, prefix)
            if outputs["reward-granted"]:
                break
            await asyncio.sleep(1)
        assert [r["lead_id"] for r in outputs["reward-granted"]] == ["tls-1"]
        _, metrics = worker.get("/metrics")
        assert password not in str(metrics)
    finally:
        worker.stop()
    assert password not in worker.log_path.read_text()
    common = ["--app-id", app_id, "--topic-prefix", prefix, "--terms", str(terms), "--quiet"]
    replayed = cli("replay", "--from-kafka", "--out", str(tmp_path / "out"), *common, env=secured)
    assert replayed.returncode == 0, replayed.stderr
    assert "tls-1" in (tmp_path / "out" / "reward-granted.jsonl").read_text()
    audit = cli("audit", "--from-inputs", *common, env=secured)
    assert audit.returncode == 0, audit.stdout + audit.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"REFERRAL_SASL_PASSWORD_FILE": "WRONG"}, "refused the SASL SCRAM-SHA-512 login"),
        ({"REFERRAL_SSL_CAFILE": ""}, "is not trusted"),
        ({"REFERRAL_SECURITY_PROTOCOL": "PLAINTEXT"}, "is a TLS listener"),
    ],
    ids=["wrong password", "untrusted certificate", "plaintext client on the TLS port"],
)
def test_a_misconfigured_client_fails_fast_with_one_clear_line(
    secured: dict[str, str], tmp_path: Path, change: dict[str, str], expected: str
) -> None:
    env = {**secured, **change}
    password = Path(secured["REFERRAL_SASL_PASSWORD_FILE"]).read_text().strip()
    if change.get("REFERRAL_SASL_PASSWORD_FILE") == "WRONG":
        wrong = tmp_path / "wrong.password"
        wrong.write_text("not-" + password)
        env["REFERRAL_SASL_PASSWORD_FILE"] = str(wrong)
    for args in (["audit", "--quiet"], ["worker", "--data-dir", str(tmp_path)]):
        started = time.monotonic()
        done = cli(*args, env=env, timeout=60)
        took = time.monotonic() - started
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert expected in output, output
        assert "Traceback" not in output, output
        assert password not in output
        assert took < 30, f"{args[0]} took {took:.0f} s to fail"
        assert output.count(expected) == 1, output


def test_no_option_or_help_text_carries_the_password(secured: dict[str, str]) -> None:
    password = Path(secured["REFERRAL_SASL_PASSWORD_FILE"]).read_text().strip()
    env = {**secured, "REFERRAL_SASL_PASSWORD": password}
    for command in ("worker", "audit", "replay", "explain", "export", "demo"):
        done = cli(command, "--help", env=env)
        assert done.returncode == 0
        assert password not in done.stdout
        assert "--sasl-password " not in done.stdout  # a secret is never a flag
    assert password not in repr(Security.from_env(env))
