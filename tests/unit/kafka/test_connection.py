"""One connection configuration for every client: checked up front, secrets kept out of sight."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from streams.kafka.connection import (
    BrokerWait,
    ConnectionConfigError,
    KafkaUnreachable,
    Protocol,
    Security,
    probe,
    speaks_tls,
)


def test_plaintext_by_default_with_nothing_set() -> None:
    security = Security.from_env({})
    assert security.protocol is Protocol.PLAINTEXT
    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_sasl_ssl_from_the_environment_with_the_password_in_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-value\n")
    security = Security.from_env(
        {
            "REFERRAL_SECURITY_PROTOCOL": "sasl_ssl",
            "REFERRAL_SASL_MECHANISM": "scram-sha-256",
            "REFERRAL_SASL_USERNAME": "billing",
            "REFERRAL_SASL_PASSWORD_FILE": str(secret),
        }
    )
    kwargs = security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kwargs["sasl_plain_password"] == "s3cret-value"
    assert kwargs["ssl_context"].check_hostname  # on unless turned off
    assert "s3cret-value" not in repr(security)
    assert "s3cret-value" not in repr(security.faust_credentials())
    assert security.redact("login s3cret-value failed") == "login ******** failed"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REFERRAL_SECURITY_PROTOCOL": "TLS"}, "one of PLAINTEXT, SSL"),
        ({"REFERRAL_SECURITY_PROTOCOL": "SASL_SSL"}, "needs a username"),
        (
            {"REFERRAL_SECURITY_PROTOCOL": "SASL_SSL", "REFERRAL_SASL_USERNAME": "u",
             "REFERRAL_SASL_PASSWORD": "p", "REFERRAL_SASL_MECHANISM": "GSSAPI"},
            "one of PLAIN, SCRAM-SHA-256",
        ),
        ({"REFERRAL_SECURITY_PROTOCOL": "SSL", "REFERRAL_SSL_CAFILE": "/no/ca.pem"}, "no such"),
        ({"REFERRAL_SASL_PASSWORD_FILE": "/no/such/password"}, "SASL password file"),
        ({"REFERRAL_SSL_CERTFILE": __file__}, "needs both its file and its key"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_with_the_reason(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConnectionConfigError, match=message):
        Security.from_env(env)


def test_the_host_name_check_can_be_turned_off_for_tests(tmp_path: Path) -> None:
    security = Security.from_env(
        {"REFERRAL_SECURITY_PROTOCOL": "SSL", "REFERRAL_SSL_CHECK_HOSTNAME": "false"}
    )
    context = security.ssl_context()
    assert context is not None
    assert not context.check_hostname


async def test_a_listener_that_closes_plaintext_connections_without_tls_is_waited_for() -> None:
    """A broker being killed or starting closes a connection at once, as a TLS listener does
    to a plaintext client: without a TLS handshake to show for it, it is not a refusal (a
    worker that took it for one stopped for good while the broker restarted)."""

    async def close_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert not await speaks_tls("127.0.0.1", port)
        with pytest.raises(KafkaUnreachable, match="closed"):
            await probe(f"127.0.0.1:{port}", Security.from_env({}))
    finally:
        server.close()
        await server.wait_closed()


def test_a_wait_for_the_broker_says_so_once_then_a_minute_later_and_backs_off() -> None:
    now = [0.0]
    logger = logging.getLogger("test.broker-wait")
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    wait = BrokerWait("cannot reach Kafka at k:9092", 1.0, 5.0, logger, clock=lambda: now[0])
    delays = []
    for _ in range(40):
        delays.append(wait.failed(TimeoutError()))
        now[0] += delays[-1]
    assert delays[:5] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert said[0] == (
        "cannot reach Kafka at k:9092 (TimeoutError); retrying with backoff, a reminder a minute"
    )
    assert said[1:] == [
        "cannot reach Kafka at k:9092: still so after 62 s (TimeoutError)",
        "cannot reach Kafka at k:9092: still so after 122 s (TimeoutError)",
        "cannot reach Kafka at k:9092: still so after 182 s (TimeoutError)",
    ]
