"""One connection configuration for every client: checked up front, secrets kept out of sight."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.kafka.connection import (
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
