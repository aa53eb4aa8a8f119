"""The local broker's SASL_SSL listener: a self-signed CA and broker certificate made with the
JDK's keytool, and one SCRAM (and PLAIN) user, for tests and for trying a secured set-up.

Everything lives in the broker's folder (`tls/`, mode 0700): the CA certificate clients trust
(`ca.pem`), the broker's key store, and the user's password (`client.password`). Never use
this CA or these credentials anywhere but on this machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

USER = "referral"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


class TlsError(RuntimeError):
    """The certificates could not be made; the message has keytool's output."""


@dataclass(frozen=True)
class SecuredListener:
    """What a client needs to reach the SASL_SSL listener, and what the broker needs to serve
    it: all under `folder`."""

    folder: Path

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def password_file(self) -> Path:
        """The SCRAM/PLAIN user's password (the client reads it from here)."""
        return self.folder / "client.password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    @property
    def store_password(self) -> str:
        return (self.folder / "store.password").read_text().strip()

    def ensure(self) -> None:
        """Make the CA, the broker certificate (for 127.0.0.1 and localhost) and the user's
        password, once."""
        if self.keystore.exists() and self.ca_pem.exists() and self.password_file.exists():
            return
        if shutil.which("keytool") is None:
            raise TlsError("keytool (from the JDK) is needed for the broker's certificate")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, mode=0o700)
        for name in ("store.password", "client.password"):
            path = self.folder / name
            path.write_text(secrets.token_urlsafe(24) + "\n")
            os.chmod(path, 0o600)
        store = self.store_password
        ca_store = self.folder / "ca.p12"
        common = ["-storetype", "PKCS12", "-storepass", store, "-keypass", store]
        self._keytool(
            "-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
            "-dname", "CN=referral-rewards local test CA", "-ext", "bc:c", "-validity", "3650",
            "-keystore", str(ca_store), *common,
        )  # fmt: skip
        self._keytool(
            "-exportcert", "-alias", "ca", "-rfc", "-file", str(self.ca_pem),
            "-keystore", str(ca_store), "-storepass", store,
        )  # fmt: skip
        self._keytool(
            "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
            "-dname", "CN=localhost", "-validity", "3650", "-keystore", str(self.keystore),
            *common,
        )  # fmt: skip
        request, signed = self.folder / "broker.csr", self.folder / "broker.pem"
        self._keytool(
            "-certreq", "-alias", "broker", "-file", str(request),
            "-keystore", str(self.keystore), "-storepass", store,
        )  # fmt: skip
        self._keytool(
            "-gencert", "-alias", "ca", "-infile", str(request), "-outfile", str(signed), "-rfc",
            "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-ext", "EKU=serverAuth",
            "-validity", "3650", "-keystore", str(ca_store), "-storepass", store,
        )  # fmt: skip
        for alias, path in (("ca", self.ca_pem), ("broker", signed)):
            self._keytool(
                "-importcert", "-noprompt", "-alias", alias, "-file", str(path),
                "-keystore", str(self.keystore), "-storepass", store,
            )  # fmt: skip

    def _keytool(self, *args: str) -> None:
        done = subprocess.run(
            ["keytool", *args], capture_output=True, text=True, check=False, timeout=60
        )
        if done.returncode != 0:
            raise TlsError(f"keytool {args[0]} failed:\n{done.stdout}{done.stderr}")

    def server_properties(self, port: int) -> dict[str, str]:
        """The broker settings of the SASL_SSL listener on `port` (merged by the caller)."""
        store, user = self.store_password, self.password
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{USER}="{user}";'
        )
        return {
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": f"{','.join(MECHANISMS)},PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.plain.sasl.jaas.config": plain,
            "listener.name.sasl_ssl.ssl.keystore.type": "PKCS12",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.keystore),
            "listener.name.sasl_ssl.ssl.keystore.password": store,
            "listener.name.sasl_ssl.ssl.key.password": store,
        }

    def redact(self, text: str) -> str:
        """`text` without the user's password."""
        return text.replace(self.password, "********")

    def scram_arguments(self) -> list[str]:
        """`kafka-storage format` arguments that create the user's SCRAM credentials."""
        user = self.password
        return [f"--add-scram={m}=[name={USER},password={user}]" for m in MECHANISMS]
