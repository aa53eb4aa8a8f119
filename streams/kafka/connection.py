"""How every Kafka client of the project connects: TLS and SASL, read in one place.

The worker's Faust app and every aiokafka consumer, producer and admin client of the tools
(replay, audit, explain, export, demo, topic admin, the fault harness) take their security
settings from `current()`: the command line sets it once (`use`), and without it the
environment does (`Security.from_env`). Secrets come from the environment or a file, never
from a flag (a flag's value shows in `ps`), and never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger("referral.kafka")
REMIND_EVERY_S = 60.0  # a wait for the broker says so again this often


class Protocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class Mechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class ConnectionConfigError(ValueError):
    """The security settings cannot work as given; the message says which and why."""


ENV = {
    "protocol": "REFERRAL_SECURITY_PROTOCOL",
    "mechanism": "REFERRAL_SASL_MECHANISM",
    "username": "REFERRAL_SASL_USERNAME",
    "password": "REFERRAL_SASL_PASSWORD",
    "password_file": "REFERRAL_SASL_PASSWORD_FILE",
    "cafile": "REFERRAL_SSL_CAFILE",
    "certfile": "REFERRAL_SSL_CERTFILE",
    "keyfile": "REFERRAL_SSL_KEYFILE",
    "check_hostname": "REFERRAL_SSL_CHECK_HOSTNAME",
}


@dataclass(frozen=True)
class Security:
    protocol: Protocol = Protocol.PLAINTEXT
    mechanism: Mechanism = Mechanism.SCRAM_SHA_512
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in (Protocol.SSL, Protocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in (Protocol.SASL_PLAINTEXT, Protocol.SASL_SSL)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Security:
        """The settings the environment gives (unset: PLAINTEXT, as the local broker)."""
        env = os.environ if env is None else env
        return cls.build(
            protocol=env.get(ENV["protocol"]) or None,
            mechanism=env.get(ENV["mechanism"]) or None,
            username=env.get(ENV["username"]) or None,
            password=env.get(ENV["password"]) or None,
            password_file=env.get(ENV["password_file"]) or None,
            cafile=env.get(ENV["cafile"]) or None,
            certfile=env.get(ENV["certfile"]) or None,
            keyfile=env.get(ENV["keyfile"]) or None,
            check_hostname=(env.get(ENV["check_hostname"]) or "true").lower()
            not in ("0", "false", "no"),
        )

    @classmethod
    def build(
        cls,
        *,
        protocol: str | None,
        mechanism: str | None,
        username: str | None,
        password: str | None,
        password_file: str | None,
        cafile: str | None,
        certfile: str | None,
        keyfile: str | None,
        check_hostname: bool,
    ) -> Security:
        """Check and assemble the settings; raise ConnectionConfigError with the reason."""
        try:
            chosen = Protocol((protocol or "PLAINTEXT").upper())
        except ValueError:
            names = ", ".join(p.value for p in Protocol)
            raise ConnectionConfigError(f"security protocol {protocol!r}: one of {names}") from None
        try:
            how = Mechanism((mechanism or "SCRAM-SHA-512").upper())
        except ValueError:
            names = ", ".join(m.value for m in Mechanism)
            raise ConnectionConfigError(f"SASL mechanism {mechanism!r}: one of {names}") from None
        if password_file:
            try:
                password = Path(password_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConnectionConfigError(
                    f"SASL password file {password_file}: {exc.strerror}"
                ) from None
        security = cls(
            protocol=chosen,
            mechanism=how,
            username=username,
            password=password,
            cafile=Path(cafile) if cafile else None,
            certfile=Path(certfile) if certfile else None,
            keyfile=Path(keyfile) if keyfile else None,
            check_hostname=check_hostname,
        )
        security.check()
        return security

    def check(self) -> None:
        if self.uses_sasl and (not self.username or not self.password):
            raise ConnectionConfigError(
                f"{self.protocol.value} needs a username ({ENV['username']}) and a password "
                f"({ENV['password']} or {ENV['password_file']})"
            )
        if bool(self.certfile) != bool(self.keyfile):
            raise ConnectionConfigError("a client certificate needs both its file and its key")
        for name in ("cafile", "certfile", "keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConnectionConfigError(f"TLS {name} {path}: no such file")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (the system CAs unless a CA file is given); None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        context.check_hostname = self.check_hostname
        if self.certfile is not None and self.keyfile is not None:
            context.load_cert_chain(str(self.certfile), str(self.keyfile))
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol.value}
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.mechanism.value
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        return kwargs

    def faust_credentials(self) -> Any:
        """Faust's `broker_credentials` for these settings (None for PLAINTEXT)."""
        import faust

        if self.uses_sasl:
            credentials = faust.SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=self.ssl_context(),
                mechanism=self.mechanism.value,
            )
            if not self.uses_tls:
                from faust.types.auth import AuthProtocol

                credentials.protocol = AuthProtocol.SASL_PLAINTEXT
            return credentials
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def redact(self, text: str) -> str:
        """`text` with the password, if it shows, replaced."""
        return text.replace(self.password, "********") if self.password else text


_IN_USE: dict[str, Security] = {}  # "security": what this process's clients connect with


def use(security: Security) -> None:
    """Set the settings every client of this process connects with."""
    _IN_USE["security"] = security


def current() -> Security:
    """The settings in use: those set with `use`, else the environment's."""
    if "security" not in _IN_USE:
        _IN_USE["security"] = Security.from_env()
    return _IN_USE["security"]


def client_kwargs() -> dict[str, Any]:
    """Security keyword arguments for an aiokafka client, from the settings in use."""
    return current().client_kwargs()


class KafkaUnreachable(ConnectionError):
    """No broker answers at the bootstrap address (yet): worth waiting for."""


class KafkaRefused(ConnectionError):
    """A broker answers but the connection cannot work as configured (TLS trust, host name,
    credentials, protocol): waiting will not help; the message says what to change."""


async def speaks_tls(host: str, port: int, timeout: float = 10.0) -> bool:
    """Whether the listener at host:port completes a TLS handshake (its certificate is not
    checked: only the protocol is in question, and nothing is sent)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout
        )
    except OSError:  # ssl.SSLError and TimeoutError are OSErrors
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def probe(bootstrap: str, security: Security | None = None) -> None:
    """Open one connection as the clients do, to the first bootstrap server that answers;
    raise KafkaRefused or KafkaUnreachable naming the cause, else return."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        KafkaConnectionError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    security = security or current()
    kwargs = security.client_kwargs()
    causes = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await create_conn(host, int(port), request_timeout_ms=10_000, **kwargs)
        except ssl.SSLCertVerificationError as exc:
            raise KafkaRefused(
                f"the certificate of {server} is not trusted ({exc.verify_message}): give its "
                f"CA with --ssl-cafile (${ENV['cafile']})"
            ) from None
        except ssl.SSLError as exc:
            raise KafkaRefused(f"TLS with {server} failed ({exc.reason or exc})") from None
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            raise KafkaRefused(
                f"{server} refused the SASL {security.mechanism.value} login of user "
                f"{security.username!r}: {security.redact(str(exc)).split(': ', 1)[-1]}"
            ) from None
        except (KafkaConnectionError, OSError) as exc:
            text = security.redact(str(exc))
            # A TLS listener closes a plaintext connection at once, but so does a broker that
            # is being killed or is starting: only a TLS handshake that succeeds tells them
            # apart (taken for a refusal, a restarting broker stopped workers for good).
            if "closed" in text and not security.uses_tls and await speaks_tls(host, int(port)):
                raise KafkaRefused(
                    f"{server} is a TLS listener: a {security.protocol.value} client cannot "
                    f"use it (--security-protocol SSL or SASL_SSL)"
                ) from None
            causes.append(f"{server}: {text}")
            continue
        conn.close()
        return
    raise KafkaUnreachable("; ".join(causes) or f"no server in {bootstrap!r}")


class BrokerWait:
    """A wait for a broker that cannot be reached: the backoff between tries, and what the
    operator is told (one line when the wait starts, then a reminder a minute, not a line
    per try)."""

    def __init__(
        self,
        what: str,
        first_delay: float,
        max_delay: float,
        logger: logging.Logger = log,
        clock: Any = time.monotonic,
    ) -> None:
        self.what = what  # e.g. "cannot reach Kafka at host:port"
        self.delay = first_delay
        self.max_delay = max_delay
        self.logger = logger
        self.clock = clock
        self.started: float | None = None  # when the first try failed
        self._said_at = 0.0

    def failed(self, cause: object) -> float:
        """A try failed because of `cause`: say so when due; the seconds to wait before the next."""
        now = self.clock()
        cause = str(cause) or type(cause).__name__  # a timeout's text is empty
        if self.started is None:
            self.started = self._said_at = now
            self.logger.warning(
                "%s (%s); retrying with backoff, a reminder a minute", self.what, cause
            )
        elif now - self._said_at >= REMIND_EVERY_S:
            self._said_at = now
            self.logger.warning(
                "%s: still so after %.0f s (%s)", self.what, now - self.started, cause
            )
        delay, self.delay = self.delay, min(self.delay * 2, self.max_delay)
        return delay


async def why_unreachable(bootstrap: str, error: BaseException) -> BaseException:
    """What to tell about a wait on `bootstrap` after `error`: the probe's KafkaUnreachable
    (which server, why), or `error` itself when the probe cannot tell or the broker answers.
    Raises KafkaRefused: a broker that refuses the connection as configured is not waited
    for."""
    try:
        await probe(bootstrap)
    except KafkaUnreachable as why:
        return why
    except KafkaRefused:
        raise
    except Exception:  # the probe itself could not tell
        pass
    return error


def wait_for_the_broker_at_start() -> None:
    """Make every aiokafka client this process starts wait while no bootstrap server answers,
    instead of failing its start: a worker checks its topics before Faust starts its
    clients, and a broker restarted in between stopped the worker for good. A broker that
    answers but refuses the connection as configured (KafkaRefused) still fails at once.
    Idempotent."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    bootstrap = AIOKafkaClient.bootstrap
    if getattr(bootstrap, "waits_for_the_broker", False):
        return

    async def patient_bootstrap(self: AIOKafkaClient) -> None:
        servers = ",".join(f"{host}:{port}" for host, port, _ in self.hosts)
        wait = BrokerWait(f"a Kafka client cannot bootstrap from {servers}", 0.5, 5.0)
        while True:
            try:
                await bootstrap(self)
                return
            except KafkaConnectionError as exc:
                await asyncio.sleep(wait.failed(await why_unreachable(servers, exc)))

    patient_bootstrap.waits_for_the_broker = True  # type: ignore[attr-defined]
    AIOKafkaClient.bootstrap = patient_bootstrap
