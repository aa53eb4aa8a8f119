"""The project's own single-node Apache Kafka broker (KRaft), started without Docker.

The jars come from Maven Central through `pom.xml` beside this module and are cached outside
the source tree; the broker's data, configuration, log and pid file live in a per-port folder
of the same cache. `make kafka-up`, `make kafka-down` and the test suite's session fixture all
go through `up()` and `down()` here, so what CI starts is what a developer starts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.kafka.secured import SecuredListener, TlsError

KAFKA_VERSION = "4.0.2"
POM = Path(__file__).with_name("pom.xml")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 45.0


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def cache_dir() -> Path:
    """Where jars and broker data live: $REFERRAL_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("REFERRAL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "referral-rewards"


@dataclass(frozen=True)
class BrokerConfig:
    """One local broker: its ports and the folder that holds its data, log and pid."""

    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    sasl_ssl_port: int | None = None  # a SASL_SSL listener beside the plaintext one

    @classmethod
    def from_env(cls, port: int | None = None, *, secure: bool = False) -> BrokerConfig:
        """$KAFKA_PORT (9092) and $KAFKA_CONTROLLER_PORT (+1); with `secure` or
        $KAFKA_SASL_SSL_PORT, a SASL_SSL listener ($KAFKA_SASL_SSL_PORT, default +2)."""
        chosen = port if port is not None else int(os.environ.get("KAFKA_PORT", "9092"))
        controller = int(os.environ.get("KAFKA_CONTROLLER_PORT", str(chosen + 1)))
        secured = os.environ.get("KAFKA_SASL_SSL_PORT")
        sasl_ssl = int(secured) if secured else (chosen + 2 if secure else None)
        return cls(
            port=chosen,
            controller_port=controller,
            heap=os.environ.get("KAFKA_HEAP", "512m"),
            sasl_ssl_port=sasl_ssl,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return cache_dir() / f"broker-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def secured(self) -> SecuredListener:
        """The SASL_SSL listener's certificates and user (made on first start)."""
        return SecuredListener(self.home / "tls")

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.sasl_ssl_port}" if self.sasl_ssl_port else None

    @property
    def _scram_marker(self) -> Path:
        return self.home / "scram-created-at-format"


def libs_dir() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def fetch_jars() -> Path:
    """Resolve Kafka and its run-time dependencies into the cache (once) and return the folder."""
    target = libs_dir()
    if (target / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return target
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not on PATH; it is needed once to fetch the Kafka jars")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy into a scratch folder and rename, so a killed download never looks complete.
    scratch = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={scratch}",
        f"-Dkafka.version={KAFKA_VERSION}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BrokerError(f"mvn could not fetch Kafka {KAFKA_VERSION}:\n{done.stdout[-4000:]}")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    return target


def _server_properties(cfg: BrokerConfig) -> str:
    listeners = f"PLAINTEXT://127.0.0.1:{cfg.port},CONTROLLER://127.0.0.1:{cfg.controller_port}"
    advertised = f"PLAINTEXT://127.0.0.1:{cfg.port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if cfg.sasl_ssl_port:
        listeners += f",SASL_SSL://127.0.0.1:{cfg.sasl_ssl_port}"
        advertised += f",SASL_SSL://127.0.0.1:{cfg.sasl_ssl_port}"
        protocols += ",SASL_SSL:SASL_SSL"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cfg.controller_port}",
        "listeners": listeners,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": str(cfg.data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        # Topics are created explicitly, with the partition counts the topology needs.
        "auto.create.topics.enable": "false",
        # One node: every internal topic must be satisfiable with a single replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # After a kill -9 the controller keeps the old registration until its session expires;
        # a short session lets a restarted node register again within seconds.
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "log.cleaner.dedupe.buffer.size": str(4 * 1024 * 1024),
        "log.segment.bytes": str(64 * 1024 * 1024),
        "num.io.threads": "4",
        "num.network.threads": "2",
        # A deleted topic's partitions are removed from disk this long after (Kafka: 60 s).
        # Tests and benchmarks delete hundreds of partitions at a time; a minute later the
        # broker spent the next run's time closing and unlinking them (`deletions_settled`).
        "log.segment.delete.delay.ms": "1000",
    }
    if cfg.sasl_ssl_port:
        settings.update(cfg.secured.server_properties(cfg.sasl_ssl_port))
    return "".join(f"{key}={value}\n" for key, value in settings.items())


_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def cluster_id() -> str:
    """A new KRaft cluster id: 16 random bytes in URL-safe base64 without padding.

    Like Kafka's own `Uuid.randomUuid`, never one that begins with `-`: a command line would
    read it as an option. `_format_storage` also passes it as `--cluster-id=...`, which reads
    any id as a value.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _java(libs: Path, cfg: BrokerConfig, main: str, *args: str) -> list[str]:
    return [
        "java",
        f"-Xms{min_heap(cfg.heap)}",
        f"-Xmx{cfg.heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={cfg.home / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def min_heap(heap: str) -> str:
    return "128m" if heap.endswith("m") and int(heap[:-1]) > 128 else heap


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # A zombie has exited; only its parent's wait() is missing.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_our_broker(pid: int, cfg: BrokerConfig) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return _alive(pid)
    return "kafka.Kafka" in cmdline and str(cfg.home) in cmdline


def running_pid(cfg: BrokerConfig) -> int | None:
    """The pid of this config's broker if it runs; a stale pid file is removed."""
    try:
        pid = int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if _alive(pid) and _is_our_broker(pid, cfg):
        return pid
    cfg.pid_file.unlink(missing_ok=True)
    return None


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _answers_metadata(bootstrap: str) -> bool:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def answers_metadata(bootstrap: str) -> bool:
    """True when a broker at `bootstrap` answers a metadata request naming at least one broker."""
    return asyncio.run(_answers_metadata(bootstrap))


def log_tail(cfg: BrokerConfig, lines: int = 60) -> str:
    try:
        text = cfg.log_file.read_text(errors="replace")
    except OSError:
        return f"(no broker log at {cfg.log_file})"
    return "\n".join(text.splitlines()[-lines:])


def _format_storage(libs: Path, cfg: BrokerConfig, cluster: str | None = None) -> None:
    if (cfg.data_dir / "meta.properties").exists():
        if cfg.sasl_ssl_port and not cfg._scram_marker.exists():
            raise BrokerError(
                f"the broker's data in {cfg.data_dir} was formatted without the SASL users; "
                "start it once with --fresh to add its SASL_SSL listener"
            )
        return
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    scram = cfg.secured.scram_arguments() if cfg.sasl_ssl_port else []
    cmd = _java(
        libs,
        cfg,
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster or cluster_id()}",
        "-c",
        str(cfg.home / "server.properties"),
        "--ignore-formatted",
        *scram,
    )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = cfg.secured.redact(done.stdout + done.stderr) if scram else done.stdout
        raise BrokerError(f"formatting KRaft storage failed:\n{output}")
    if scram:
        cfg._scram_marker.touch()


def up(cfg: BrokerConfig | None = None, *, fresh: bool = False) -> tuple[str, bool]:
    """Start the broker unless it runs; return (bootstrap address, whether this call started it).

    `fresh` wipes the broker's data first (tests want an empty cluster); it is refused while the
    broker runs, since the data belongs to that process.
    """
    cfg = cfg or BrokerConfig.from_env()
    if running_pid(cfg) is not None:
        if fresh:
            raise BrokerError(f"a broker already runs on {cfg.bootstrap}; stop it before --fresh")
        _wait_ready(cfg, None)
        return cfg.bootstrap, False
    if _port_open(cfg.port):
        raise BrokerError(
            f"port {cfg.port} is taken by another process; set KAFKA_PORT to a free port"
        )
    libs = fetch_jars()
    if fresh:
        shutil.rmtree(cfg.data_dir, ignore_errors=True)
        cfg._scram_marker.unlink(missing_ok=True)
    cfg.home.mkdir(parents=True, exist_ok=True)
    if cfg.sasl_ssl_port:
        try:
            cfg.secured.ensure()
        except TlsError as exc:
            raise BrokerError(str(exc)) from None
    (cfg.home / "server.properties").write_text(_server_properties(cfg))
    (cfg.home / "log4j2.properties").write_text(_LOG4J2)
    _format_storage(libs, cfg)
    with cfg.log_file.open("ab") as log:
        proc = subprocess.Popen(
            _java(libs, cfg, "kafka.Kafka", str(cfg.home / "server.properties")),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the broker outlives `make kafka-up`
        )
    cfg.pid_file.write_text(f"{proc.pid}\n")
    _STARTED[proc.pid] = proc
    _wait_ready(cfg, proc)
    return cfg.bootstrap, True


_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def _wait_ready(cfg: BrokerConfig, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            cfg.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                f"the broker exited with status {proc.returncode}; log {cfg.log_file}:\n"
                + log_tail(cfg)
            )
        if _port_open(cfg.port) and answers_metadata(cfg.bootstrap):
            return
        time.sleep(0.3)
    raise BrokerError(
        f"the broker did not answer on {cfg.bootstrap} within {START_TIMEOUT_S:.0f}s; "
        f"log {cfg.log_file}:\n" + log_tail(cfg)
    )


def deletions_settled(cfg: BrokerConfig | None = None, timeout: float = 120.0) -> float:
    """Wait until the broker has removed from disk every partition of the topics deleted
    (its `-delete` folders); return the seconds waited. What a benchmark times must not
    include the broker tearing down the topics of the phase before."""
    cfg = cfg or BrokerConfig.from_env()
    begun = time.monotonic()
    while any(cfg.data_dir.glob("*-delete")):  # none in a data folder not made yet
        if time.monotonic() - begun > timeout:
            raise BrokerError(f"deleted topics still in {cfg.data_dir} after {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - begun


def down(cfg: BrokerConfig | None = None) -> bool:
    """Stop the broker and wait for its process to end; False when none was running."""
    cfg = cfg or BrokerConfig.from_env()
    pid = running_pid(cfg)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
    cfg.pid_file.unlink(missing_ok=True)
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    proc = _STARTED.get(pid)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            _STARTED.pop(pid, None)
            return True
        if proc is None and not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def status(cfg: BrokerConfig | None = None) -> str:
    cfg = cfg or BrokerConfig.from_env()
    pid = running_pid(cfg)
    if pid is None:
        return f"not running (would listen on {cfg.bootstrap})"
    return f"running, pid {pid}, bootstrap {cfg.bootstrap}, log {cfg.log_file}"
